//! zap's console line: `ts<TAB>level<TAB>[logger<TAB>]caller<TAB>msg[<TAB>{"k": v, ...}]`.

use super::json::write_fields;
use super::record::Record;

/// Appends the whole line (with its `\n`) for `record` logged at `timestamp`.
pub fn write_line(record: &Record, timestamp: &str, out: &mut String) {
    out.push_str(timestamp);
    out.push('\t');
    out.push_str(record.level);
    if let Some(logger) = record.logger {
        out.push('\t');
        out.push_str(logger);
    }
    out.push('\t');
    out.push_str(&record.caller);
    out.push('\t');
    out.push_str(&record.message);
    if !record.fields.is_empty() {
        out.push('\t');
        write_fields(&record.fields, ", ", ": ", out);
    }
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logging::record::FieldValue;

    #[test]
    fn tab_separated_with_spaced_fields() {
        let record = Record {
            level: "warn",
            caller: "src/grpc/call.rs:9".to_string(),
            logger: None,
            message: "request stats".to_string(),
            fields: vec![
                (
                    "time spent".to_string(),
                    FieldValue::Text("1ms".to_string()),
                ),
                ("request size".to_string(), FieldValue::Unsigned(10)),
            ],
        };
        let mut line = String::new();
        write_line(&record, "2026-12-07T23:10:01.123456Z", &mut line);
        assert_eq!(
            line,
            "2026-12-07T23:10:01.123456Z\twarn\tsrc/grpc/call.rs:9\trequest stats\t\
             {\"time spent\": \"1ms\", \"request size\": 10}\n"
        );
    }
}
