//! The JSON line (zap's `JSONEncoder` with etcd's encoder config): `level`, `ts`, `logger`
//! (named loggers only), `caller`, `msg`, then the fields, one object per line.

use super::record::{FieldValue, Record};

/// Appends `text` as a JSON string (quotes included) to `out`.
pub fn write_string(text: &str, out: &mut String) {
    use std::fmt::Write as _;
    out.push('"');
    for character in text.chars() {
        match character {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            control if (control as u32) < 0x20 || control == '\u{7f}' => {
                let _ = write!(out, "\\u{:04x}", control as u32);
            }
            other => out.push(other),
        }
    }
    out.push('"');
}

/// Appends a field's value: numbers and booleans bare, text as a JSON string; a float that JSON
/// cannot carry (NaN, infinities) as zap writes it, a string.
pub fn write_value(value: &FieldValue, out: &mut String) {
    use std::fmt::Write as _;
    match value {
        FieldValue::Text(text) => write_string(text, out),
        FieldValue::Signed(number) => {
            let _ = write!(out, "{number}");
        }
        FieldValue::Unsigned(number) => {
            let _ = write!(out, "{number}");
        }
        FieldValue::Float(number) if number.is_nan() => out.push_str("\"NaN\""),
        FieldValue::Float(number) if number.is_infinite() => out.push_str(if *number > 0.0 {
            "\"+Inf\""
        } else {
            "\"-Inf\""
        }),
        FieldValue::Float(number) => {
            let _ = write!(out, "{number}");
        }
        FieldValue::Bool(flag) => out.push_str(if *flag { "true" } else { "false" }),
    }
}

/// The fields as one JSON object; `separator` and `colon` are `","`/`":"` in JSON lines and
/// `", "`/`": "` in console lines (zap's console encoder spaces them).
pub fn write_fields(
    fields: &[(String, FieldValue)],
    separator: &str,
    colon: &str,
    out: &mut String,
) {
    out.push('{');
    for (index, (name, value)) in fields.iter().enumerate() {
        if index > 0 {
            out.push_str(separator);
        }
        write_string(name, out);
        out.push_str(colon);
        write_value(value, out);
    }
    out.push('}');
}

/// Appends the whole line (with its `\n`) for `record` logged at `timestamp`.
pub fn write_line(record: &Record, timestamp: &str, out: &mut String) {
    out.push_str("{\"level\":");
    write_string(record.level, out);
    out.push_str(",\"ts\":");
    write_string(timestamp, out);
    if let Some(logger) = record.logger {
        out.push_str(",\"logger\":");
        write_string(logger, out);
    }
    out.push_str(",\"caller\":");
    write_string(&record.caller, out);
    out.push_str(",\"msg\":");
    write_string(&record.message, out);
    for (name, value) in &record.fields {
        out.push(',');
        write_string(name, out);
        out.push(':');
        write_value(value, out);
    }
    out.push_str("}\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_in_zaps_order_and_types_kept() {
        let record = Record {
            level: "info",
            caller: "src/raft/group.rs:12".to_string(),
            logger: Some("raft"),
            message: "raft.node: 1 elected leader 2 at term 3".to_string(),
            fields: vec![
                ("term".to_string(), FieldValue::Unsigned(3)),
                (
                    "quoted \"x\"\n".to_string(),
                    FieldValue::Text("a\u{1}b".to_string()),
                ),
                ("ok".to_string(), FieldValue::Bool(true)),
            ],
        };
        let mut line = String::new();
        write_line(&record, "2026-12-07T23:10:01.123456Z", &mut line);
        assert_eq!(
            line,
            "{\"level\":\"info\",\"ts\":\"2026-12-07T23:10:01.123456Z\",\"logger\":\"raft\",\
             \"caller\":\"src/raft/group.rs:12\",\"msg\":\"raft.node: 1 elected leader 2 at term 3\",\
             \"term\":3,\"quoted \\\"x\\\"\\n\":\"a\\u0001b\",\"ok\":true}\n"
        );
    }
}
