//! One `tracing` event taken apart into zap's parts: level, caller, logger name, message and
//! typed fields (in the order the call site wrote them).

use std::fmt::Write as _;
use tracing::field::{Field, Visit};

/// A field's value with its type kept, so the JSON encoder writes numbers as numbers.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue {
    Text(String),
    Signed(i64),
    Unsigned(u64),
    Float(f64),
    Bool(bool),
}

/// An event, ready to encode.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// zap's lowercase level name.
    pub level: &'static str,
    /// `path:line` of the call site.
    pub caller: String,
    /// zap's logger name (`"raft"`), for events whose target is one of `NAMED_LOGGERS`.
    pub logger: Option<&'static str>,
    pub message: String,
    pub fields: Vec<(String, FieldValue)>,
}

impl Record {
    pub fn from_event(event: &tracing::Event<'_>) -> Record {
        let metadata = event.metadata();
        let mut visitor = FieldCollector::default();
        event.record(&mut visitor);
        // A `log` crate record (rustls logs through `log`) arrives through tracing-log with its
        // call site in `log.file` and `log.line` fields.
        let caller = match visitor.log_file.take() {
            Some(file) => self::caller(Some(&file), visitor.log_line),
            None => self::caller(metadata.file(), metadata.line()),
        };
        Record {
            level: level_name(*metadata.level()),
            caller,
            logger: super::NAMED_LOGGERS
                .iter()
                .copied()
                .find(|name| *name == metadata.target()),
            message: visitor.message,
            fields: visitor.fields,
        }
    }
}

/// zap's lowercase level names; `tracing`'s TRACE is below zap's lowest level and is written
/// as `debug`.
pub fn level_name(level: tracing::Level) -> &'static str {
    match level {
        tracing::Level::ERROR => "error",
        tracing::Level::WARN => "warn",
        tracing::Level::INFO => "info",
        tracing::Level::DEBUG | tracing::Level::TRACE => "debug",
    }
}

/// The marker in a path that starts the part worth printing for a dependency's source file.
const REGISTRY_MARKER: &str = "/registry/src/";

/// `file:line` relative to the workspace (`src/shard/runtime.rs:42`); a dependency's absolute
/// path is cut to `crate-version/src/file.rs`, like zap's short caller.
pub fn caller(file: Option<&str>, line: Option<u32>) -> String {
    let file = file.unwrap_or("unknown");
    let short = match file.find(REGISTRY_MARKER) {
        Some(at) => {
            let after_marker = &file[at + REGISTRY_MARKER.len()..];
            // Skip the registry index directory (`index.crates.io-…/`).
            after_marker
                .split_once('/')
                .map_or(after_marker, |(_, rest)| rest)
        }
        None => file,
    };
    let mut text = String::with_capacity(short.len() + 6);
    text.push_str(short);
    if let Some(line) = line {
        let _ = write!(text, ":{line}");
    }
    text
}

/// etcd's field names are hyphenated: `local_member_id` is written `local-member-id`.
fn field_name(field: &Field) -> String {
    field.name().replace('_', "-")
}

#[derive(Default)]
struct FieldCollector {
    message: String,
    fields: Vec<(String, FieldValue)>,
    /// The call site of a bridged `log` record.
    log_file: Option<String>,
    log_line: Option<u32>,
}

/// Fields tracing-log adds to a bridged `log` record: its call site, not event data.
const LOG_BRIDGE_PREFIX: &str = "log.";

impl FieldCollector {
    fn push(&mut self, field: &Field, value: FieldValue) {
        if let Some(name) = field.name().strip_prefix(LOG_BRIDGE_PREFIX) {
            match (name, value) {
                ("file", FieldValue::Text(file)) => self.log_file = Some(file),
                ("line", FieldValue::Unsigned(line)) => self.log_line = u32::try_from(line).ok(),
                _ => {}
            }
            return;
        }
        self.fields.push((field_name(field), value));
    }
}

impl Visit for FieldCollector {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let mut text = String::new();
        let _ = write!(text, "{value:?}");
        if field.name() == "message" {
            self.message = text;
        } else {
            self.push(field, FieldValue::Text(text));
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_string();
        } else {
            self.push(field, FieldValue::Text(value.to_string()));
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.push(field, FieldValue::Signed(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.push(field, FieldValue::Unsigned(value));
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        match i64::try_from(value) {
            Ok(value) => self.push(field, FieldValue::Signed(value)),
            Err(_) => self.push(field, FieldValue::Text(value.to_string())),
        }
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        match u64::try_from(value) {
            Ok(value) => self.push(field, FieldValue::Unsigned(value)),
            Err(_) => self.push(field, FieldValue::Text(value.to_string())),
        }
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.push(field, FieldValue::Float(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.push(field, FieldValue::Bool(value));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.push(field, FieldValue::Text(value.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::caller;

    #[test]
    fn callers_are_workspace_relative_or_crate_relative() {
        assert_eq!(
            caller(Some("src/shard/runtime.rs"), Some(42)),
            "src/shard/runtime.rs:42"
        );
        assert_eq!(
            caller(
                Some("/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/h2-0.4.12/src/server.rs"),
                Some(7)
            ),
            "h2-0.4.12/src/server.rs:7"
        );
    }
}
