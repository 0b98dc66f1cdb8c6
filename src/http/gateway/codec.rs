//! The JSON side of the gateway: request bodies into prost messages and response messages into
//! JSON, through the proto3 JSON mapping generated from Capstan's `.proto` files
//! (`capstan-proto`'s build script, pbjson: proto field names out, either name in, 64-bit
//! integers as strings, bytes as base64, enums by name, defaults left out, unknown fields
//! ignored), which is what etcd's gateway marshaller (`JSONPb{OrigName: true}`) writes.
//!
//! Reading follows grpc-gateway's decoder: the body's first JSON value is the request, bytes
//! after it are ignored, an empty body is the empty request. A stream's body is a sequence of
//! such values. Error texts copy Go's `encoding/json` for the common mistakes (not JSON at
//! all, not an object, cut short); other errors carry serde's description.
//!
//! Writing escapes `<`, `>` and `&` (and U+2028, U+2029) inside strings as Go's encoder does.

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

/// Most messages read from one stream's body (each still bounded by the request size).
pub const MAX_STREAM_REQUESTS: usize = 1024;

/// The request in `body`; `Err` carries the message of the 400 answer.
pub fn decode_one<Request: DeserializeOwned + Default>(body: &[u8]) -> Result<Request, String> {
    match decode_values(body).next() {
        None => Ok(Request::default()),
        Some(value) => into_request(value?),
    }
}

/// The requests of a stream's body, in order; stops at the first one that cannot be decoded,
/// whose error comes last.
pub fn decode_stream<Request: DeserializeOwned + Default>(
    body: &[u8],
) -> (Vec<Request>, Option<String>) {
    let mut requests = Vec::new();
    for value in decode_values(body).take(MAX_STREAM_REQUESTS) {
        match value.and_then(into_request) {
            Ok(request) => requests.push(request),
            Err(error) => return (requests, Some(error)),
        }
    }
    (requests, None)
}

fn into_request<Request: DeserializeOwned + Default>(value: Value) -> Result<Request, String> {
    let kind = match &value {
        Value::Null => return Ok(Request::default()),
        Value::Object(_) => {
            let mut value = value;
            clear_base64_trailing_bits(&mut value);
            return serde_json::from_value(value)
                .map_err(|error| go_data_error(&error.to_string()));
        }
        Value::Array(_) => "array",
        Value::String(_) => "string",
        Value::Number(_) => "number",
        Value::Bool(_) => "bool",
    };
    Err(format!(
        "json: cannot unmarshal {kind} into Go value of type map[string]json.RawMessage"
    ))
}

/// Go's base64 decoder (`StdEncoding`, which grpc-gateway's bytes fields use) ignores the
/// unused low bits of the last symbol before the padding (`d2t=` is `wk`, as `d2s=` is);
/// the generated decoder refuses them. So every padded base64 string in the request gets
/// those bits cleared first. Only strings ending in `=` change, which no enum name, number or
/// URL does: in practice only bytes fields.
fn clear_base64_trailing_bits(value: &mut Value) {
    match value {
        Value::String(text) => {
            if let Some(canonical) = canonical_base64(text) {
                *text = canonical;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(clear_base64_trailing_bits),
        Value::Object(map) => map.values_mut().for_each(clear_base64_trailing_bits),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// `text` with the unused bits of its last symbol cleared, if it is padded base64 with some
/// of them set; `None` otherwise.
fn canonical_base64(text: &str) -> Option<String> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = text.as_bytes();
    if bytes.len() % 4 != 0 || !text.ends_with('=') {
        return None;
    }
    let padding = if text.ends_with("==") { 2 } else { 1 };
    let symbols = &bytes[..bytes.len() - padding];
    if !symbols.iter().all(|byte| ALPHABET.contains(byte)) {
        return None;
    }
    let last = *symbols.last()?;
    let sextet = ALPHABET.iter().position(|symbol| *symbol == last)?;
    // One byte in the last group leaves 4 unused bits, two bytes leave 2.
    let unused_mask = if padding == 2 { 0b1111 } else { 0b11 };
    if sextet & unused_mask == 0 {
        return None;
    }
    let mut canonical = symbols[..symbols.len() - 1].to_vec();
    canonical.push(ALPHABET[sextet & !unused_mask]);
    canonical.extend(std::iter::repeat_n(b'=', padding));
    String::from_utf8(canonical).ok()
}

/// Go's text for a value of the wrong kind, where the generated decoder's text can be told
/// apart: bytes that are not base64, a number or other non-string where bytes belong.
fn go_data_error(serde_text: &str) -> String {
    if serde_text.starts_with("Invalid symbol ") || serde_text.starts_with("Invalid last symbol ") {
        if let Some(offset) = serde_text
            .rsplit_once(", offset ")
            .and_then(|(_, rest)| rest.trim_end_matches('.').parse::<usize>().ok())
        {
            return format!("illegal base64 data at input byte {offset}");
        }
    }
    if let Some(found) = serde_text
        .strip_prefix("invalid type: ")
        .and_then(|rest| rest.strip_suffix(", expected a base64 string"))
    {
        let kind = match found.split_whitespace().next() {
            Some("integer" | "floating") => "number",
            Some("boolean") => "bool",
            Some("sequence") => "array",
            Some("map") => "object",
            _ => return serde_text.to_string(),
        };
        return format!("json: cannot unmarshal {kind} into Go value of type []uint8");
    }
    serde_text.to_string()
}

/// The JSON values of `body` one after the other, with Go's texts for syntax errors.
fn decode_values(body: &[u8]) -> impl Iterator<Item = Result<Value, String>> + '_ {
    let mut values = serde_json::Deserializer::from_slice(body).into_iter::<Value>();
    let mut failed = false;
    std::iter::from_fn(move || {
        if failed {
            return None;
        }
        let offset = values.byte_offset();
        let next = values.next()?;
        Some(next.map_err(|error| {
            failed = true;
            go_syntax_error(&body[offset..], &error)
        }))
    })
}

/// Go's `encoding/json` text for the error serde found in `rest` (the bytes from where the
/// failing value starts).
fn go_syntax_error(rest: &[u8], error: &serde_json::Error) -> String {
    if error.is_eof() {
        return "unexpected EOF".to_string();
    }
    let start = rest
        .iter()
        .position(|byte| !byte.is_ascii_whitespace())
        .unwrap_or(rest.len());
    let value = &rest[start..];
    match value.first() {
        Some(&first) if !starts_value(first) => format!(
            "invalid character {} looking for beginning of value",
            go_quote_char(first)
        ),
        Some(b't') => literal_error(value, "true").unwrap_or_else(|| error.to_string()),
        Some(b'f') => literal_error(value, "false").unwrap_or_else(|| error.to_string()),
        Some(b'n') => literal_error(value, "null").unwrap_or_else(|| error.to_string()),
        _ => error.to_string(),
    }
}

/// Go's text for a misspelt literal (`nul`, `tru3`): the first byte that differs.
fn literal_error(value: &[u8], literal: &str) -> Option<String> {
    let (&found, &expected) = value
        .iter()
        .zip(literal.as_bytes())
        .find(|(found, expected)| found != expected)?;
    Some(format!(
        "invalid character {} in literal {literal} (expecting {})",
        go_quote_char(found),
        go_quote_char(expected)
    ))
}

fn starts_value(byte: u8) -> bool {
    matches!(
        byte,
        b'{' | b'[' | b'"' | b'-' | b't' | b'f' | b'n' | b'0'..=b'9'
    )
}

/// Go's `quoteChar`.
fn go_quote_char(byte: u8) -> String {
    match byte {
        b'\'' => "'\\''".to_string(),
        b'"' => "'\"'".to_string(),
        0x20..=0x7e => format!("'{}'", byte as char),
        _ => format!("'\\x{byte:02x}'"),
    }
}

/// `message` in JSON, as grpc-gateway writes it.
pub fn encode<Message: Serialize>(message: &Message) -> Vec<u8> {
    match serde_json::to_vec(message) {
        Ok(json) => escape_like_go(json),
        // The generated impls write only strings, numbers, booleans, lists and objects.
        Err(error) => unreachable!("a protobuf message always serializes to JSON: {error}"),
    }
}

/// A JSON string of `text`, escaped as Go's encoder does.
pub fn json_string(text: &str) -> String {
    let json = escape_like_go(
        serde_json::Value::String(text.to_string())
            .to_string()
            .into_bytes(),
    );
    String::from_utf8(json).unwrap_or_default()
}

/// Go's `encoding/json` escapes `<`, `>`, `&`, U+2028 and U+2029 in strings; outside strings
/// those never occur in JSON, so every occurrence is in a string.
fn escape_like_go(json: Vec<u8>) -> Vec<u8> {
    let needs_escape = json
        .iter()
        .any(|byte| matches!(byte, b'<' | b'>' | b'&' | 0xe2));
    if !needs_escape {
        return json;
    }
    let mut out = Vec::with_capacity(json.len() + 16);
    let mut index = 0;
    while index < json.len() {
        match &json[index..] {
            [b'<', ..] => out.extend_from_slice(b"\\u003c"),
            [b'>', ..] => out.extend_from_slice(b"\\u003e"),
            [b'&', ..] => out.extend_from_slice(b"\\u0026"),
            [0xe2, 0x80, 0xa8, ..] => {
                out.extend_from_slice(b"\\u2028");
                index += 2;
            }
            [0xe2, 0x80, 0xa9, ..] => {
                out.extend_from_slice(b"\\u2029");
                index += 2;
            }
            [byte, ..] => out.push(*byte),
            [] => break,
        }
        index += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use capstan_proto::etcdserverpb::{
        compare, request_op, Compare, PutRequest, RangeRequest, RangeResponse, RequestOp,
        ResponseHeader, TxnRequest, WatchRequest,
    };
    use capstan_proto::mvccpb::KeyValue;

    #[test]
    fn writes_proto_names_strings_for_64_bit_and_base64() {
        let response = RangeResponse {
            header: Some(ResponseHeader {
                cluster_id: 15118495548433857066,
                member_id: 13668033151171901709,
                revision: 2,
                raft_term: 2,
            }),
            kvs: vec![KeyValue {
                key: "foo".into(),
                create_revision: 2,
                mod_revision: 2,
                version: 1,
                value: "bar".into(),
                lease: 0,
            }],
            more: false,
            count: 1,
        };
        assert_eq!(
            String::from_utf8(encode(&response)).expect("utf-8"),
            "{\"header\":{\"cluster_id\":\"15118495548433857066\",\
             \"member_id\":\"13668033151171901709\",\"revision\":\"2\",\"raft_term\":\"2\"},\
             \"kvs\":[{\"key\":\"Zm9v\",\"create_revision\":\"2\",\"mod_revision\":\"2\",\
             \"version\":\"1\",\"value\":\"YmFy\"}],\"count\":\"1\"}"
        );
    }

    #[test]
    fn reads_both_names_ignores_unknown_fields_and_trailing_bytes() {
        let put: PutRequest =
            decode_one(br#"{"key":"Zm9v","value":"YmFy","prevKv":true,"x":1} trailing"#)
                .expect("decodes");
        assert_eq!(&put.key[..], b"foo");
        assert!(put.prev_kv);
        let range: RangeRequest =
            decode_one(br#"{"key":"Zm9v","range_end":"AA==","limit":"5","sort_order":"DESCEND"}"#)
                .expect("decodes");
        assert_eq!(range.limit, 5);
        assert_eq!(&range.range_end[..], b"\0");
        assert_eq!(range.sort_order, 2);
        let empty: RangeRequest = decode_one(b"  ").expect("empty body");
        assert_eq!(empty, RangeRequest::default());
        let txn: TxnRequest = decode_one(
            br#"{"compare":[{"key":"Zm9v","result":"EQUAL","target":"VERSION","version":"0"}],
                "success":[{"requestPut":{"key":"Zm9v","value":"MQ=="}}]}"#,
        )
        .expect("decodes");
        assert_eq!(
            txn.compare,
            vec![Compare {
                key: "foo".into(),
                target: compare::CompareTarget::Version as i32,
                target_union: Some(compare::TargetUnion::Version(0)),
                ..Compare::default()
            }]
        );
        assert!(matches!(
            txn.success[0],
            RequestOp {
                request: Some(request_op::Request::RequestPut(_))
            }
        ));
    }

    #[test]
    fn errors_read_like_gos() {
        let error = decode_one::<RangeRequest>(b"not json").expect_err("not JSON");
        assert_eq!(
            error,
            "invalid character 'o' in literal null (expecting 'u')"
        );
        let error = decode_one::<RangeRequest>(b"garbage").expect_err("not JSON");
        assert_eq!(
            error,
            "invalid character 'g' looking for beginning of value"
        );
        let error = decode_one::<RangeRequest>(b"[]").expect_err("array");
        assert_eq!(
            error,
            "json: cannot unmarshal array into Go value of type map[string]json.RawMessage"
        );
        let error = decode_one::<RangeRequest>(br#"{"key":"Zm9v""#).expect_err("cut");
        assert_eq!(error, "unexpected EOF");
        let error = decode_one::<RangeRequest>(br#"{"key":5}"#).expect_err("number");
        assert_eq!(
            error,
            "json: cannot unmarshal number into Go value of type []uint8"
        );
        let lenient: RangeRequest =
            decode_one(br#"{"key":"d2s=","range_end":"d2t="}"#).expect("Go's base64 reads it");
        assert_eq!(lenient.range_end, lenient.key);
        let lenient: RangeRequest = decode_one(br#"{"key":"YR=="}"#).expect("Go's base64");
        assert_eq!(&lenient.key[..], b"a");
        let error = decode_one::<RangeRequest>(br#"{"key":"%%%"}"#).expect_err("not base64");
        assert_eq!(error, "illegal base64 data at input byte 0");
        assert!(decode_one::<RangeRequest>(br#"{"limit":"abc"}"#).is_err());
    }

    #[test]
    fn streams_read_one_value_after_another() {
        let (requests, error) = decode_stream::<WatchRequest>(
            br#"{"create_request":{"key":"d2s="}}{"createRequest":{"key":"eHg="}} oops"#,
        );
        assert_eq!(requests.len(), 2);
        assert_eq!(
            error.as_deref(),
            Some("invalid character 'o' looking for beginning of value")
        );
    }

    #[test]
    fn strings_are_escaped_like_go() {
        assert_eq!(
            json_string("a<b>&c\u{2028}"),
            "\"a\\u003cb\\u003e\\u0026c\\u2028\""
        );
    }
}
