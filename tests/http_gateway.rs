//! The JSON gateway on the client port of a real `capstan` process, over raw HTTP/1.1: every
//! service's paths (KV, Watch, Lease, Cluster, Maintenance, Lock, Election), grpc-gateway's
//! JSON (proto field names, 64-bit integers as strings, bytes as base64), its chunked streams
//! (`{"result":…}` lines) and its error answers as etcd 3.4's gateway writes them; the same
//! requests against Debian's etcd 3.4 give JSON with the same keys and types; and OpenStack's
//! `etcd3gw` client (PyPI), when python3 can import it, works unchanged.
mod common;

use common::*;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// How long one request may take before the test fails.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

/// One HTTP response, its body de-chunked.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    chunked: bool,
    trailers: Vec<(String, String)>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        header_value(&self.headers, name)
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|error| panic!("not JSON ({error}): {}", self.text()))
    }
}

fn connect(endpoint: &str) -> TcpStream {
    let stream = TcpStream::connect(endpoint).expect("connect to the client port");
    stream
        .set_read_timeout(Some(REQUEST_TIMEOUT))
        .expect("read timeout");
    stream
}

fn send(stream: &mut TcpStream, method: &str, path: &str, body: &[u8], close: bool) {
    let connection = if close { "Connection: close\r\n" } else { "" };
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: capstan\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n{connection}\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).expect("send head");
    stream.write_all(body).expect("send body");
}

/// Reads a response head: status and headers.
fn read_head(reader: &mut BufReader<TcpStream>) -> (u16, Vec<(String, String)>) {
    let mut status_line = String::new();
    reader.read_line(&mut status_line).expect("status line");
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).expect("header line");
        let line = line.trim_end();
        if line.is_empty() {
            return (status, headers);
        }
        let (name, value) = line.split_once(':').expect("a header");
        headers.push((name.to_string(), value.trim().to_string()));
    }
}

/// The next chunk of a chunked body; `None` at the last chunk (whose trailers go to
/// `trailers`).
fn read_chunk(
    reader: &mut BufReader<TcpStream>,
    trailers: &mut Vec<(String, String)>,
) -> Option<Vec<u8>> {
    let mut size_line = String::new();
    reader.read_line(&mut size_line).expect("chunk size");
    let size = usize::from_str_radix(size_line.trim(), 16)
        .unwrap_or_else(|_| panic!("bad chunk size line {size_line:?}"));
    if size == 0 {
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).expect("trailer line");
            let line = line.trim_end();
            if line.is_empty() {
                return None;
            }
            let (name, value) = line.split_once(':').expect("a trailer");
            trailers.push((name.to_string(), value.trim().to_string()));
        }
    }
    let mut chunk = vec![0u8; size + 2];
    reader.read_exact(&mut chunk).expect("chunk");
    assert!(chunk.ends_with(b"\r\n"), "chunk not ended by CRLF");
    chunk.truncate(size);
    Some(chunk)
}

/// One request on a fresh connection, answered whole.
fn request(endpoint: &str, method: &str, path: &str, body: &[u8]) -> Reply {
    let mut stream = connect(endpoint);
    send(&mut stream, method, path, body, true);
    let mut reader = BufReader::new(stream);
    let (status, headers) = read_head(&mut reader);
    let chunked = headers
        .iter()
        .any(|(name, value)| name.eq_ignore_ascii_case("transfer-encoding") && value == "chunked");
    let mut body = Vec::new();
    let mut trailers = Vec::new();
    if chunked {
        while let Some(chunk) = read_chunk(&mut reader, &mut trailers) {
            body.extend(chunk);
        }
    } else if method != "HEAD" {
        let length: usize = headers
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, value)| value.parse().ok())
            .expect("a Content-Length");
        body.resize(length, 0);
        reader.read_exact(&mut body).expect("body");
    }
    Reply {
        status,
        headers,
        body,
        chunked,
        trailers,
    }
}

fn post(endpoint: &str, path: &str, body: &str) -> Reply {
    request(endpoint, "POST", path, body.as_bytes())
}

/// POSTs and returns the JSON of a 200 answer.
fn call(endpoint: &str, path: &str, body: &str) -> Value {
    let reply = post(endpoint, path, body);
    assert_eq!(reply.status, 200, "{path} {body}: {}", reply.text());
    assert_eq!(reply.header("Content-Type"), Some("application/json"));
    assert_eq!(
        reply.header("Grpc-Metadata-Content-Type"),
        Some("application/grpc")
    );
    reply.json()
}

/// A streamed call, read piece by piece. The head comes with the first piece (as Go's server
/// writes nothing before the handler's first write), so it is read on first use.
struct Stream {
    reader: BufReader<TcpStream>,
    head: Option<(u16, Vec<(String, String)>)>,
}

impl Stream {
    fn open(endpoint: &str, path: &str, body: &str) -> Stream {
        let mut stream = connect(endpoint);
        send(&mut stream, "POST", path, body.as_bytes(), false);
        Stream {
            reader: BufReader::new(stream),
            head: None,
        }
    }

    fn head(&mut self) -> &(u16, Vec<(String, String)>) {
        if self.head.is_none() {
            self.head = Some(read_head(&mut self.reader));
        }
        self.head.as_ref().expect("read above")
    }

    fn status(&mut self) -> u16 {
        self.head().0
    }

    /// Header names in order, without `Date`.
    fn header_names(&mut self) -> Vec<String> {
        self.head()
            .1
            .iter()
            .map(|(name, _)| name.clone())
            .filter(|name| name != "Date")
            .collect()
    }

    /// The next message's JSON (`{"result":…}` or `{"error":…}`); `None` at the end.
    fn next(&mut self) -> Option<Value> {
        self.head();
        let mut trailers = Vec::new();
        let chunk = read_chunk(&mut self.reader, &mut trailers)?;
        assert!(chunk.ends_with(b"\n"), "a piece ends with a newline");
        Some(serde_json::from_slice(&chunk).expect("a JSON piece"))
    }
}

fn base64(text: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = text.as_bytes();
    let mut out = String::new();
    for group in bytes.chunks(3) {
        let value = group.iter().enumerate().fold(0u32, |acc, (index, byte)| {
            acc | (*byte as u32) << (16 - 8 * index)
        });
        for index in 0..4 {
            if index <= group.len() {
                out.push(ALPHABET[(value >> (18 - 6 * index) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The header every answer carries: four fields, all strings of digits.
fn assert_header(json: &Value) {
    let header = json["header"].as_object().expect("a header object");
    for field in ["cluster_id", "member_id", "revision", "raft_term"] {
        let value = header[field].as_str().unwrap_or_else(|| panic!("{field}"));
        assert!(value.parse::<u64>().is_ok(), "{field} = {value:?}");
    }
}

fn start_capstan(dir: &Path) -> Server {
    Server::capstan(dir)
}

#[test]
fn kv_calls_answer_grpc_gateway_json() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = start_capstan(dir.path());
    let endpoint = server.endpoint();

    let put = call(&endpoint, "/v3/kv/put", r#"{"key":"Zm9v","value":"YmFy"}"#);
    assert_header(&put);
    assert_eq!(put.as_object().map(|object| object.len()), Some(1));
    let revision: i64 = put["header"]["revision"]
        .as_str()
        .and_then(|text| text.parse().ok())
        .expect("revision");

    let range = post(&endpoint, "/v3/kv/range", r#"{"key":"Zm9v"}"#);
    let text = range.text();
    let expected_kvs = format!(
        ",\"kvs\":[{{\"key\":\"Zm9v\",\"create_revision\":\"{revision}\",\
         \"mod_revision\":\"{revision}\",\"version\":\"1\",\"value\":\"YmFy\"}}],\"count\":\"1\"}}"
    );
    assert!(text.ends_with(&expected_kvs), "{text}");
    assert!(text.starts_with("{\"header\":{\"cluster_id\":\""), "{text}");
    assert!(!range.chunked);

    // Both proto names and lowerCamel names are read; a prev_kv comes back.
    let put = call(
        &endpoint,
        "/v3/kv/put",
        r#"{"key":"Zm9v","value":"YmF6","prevKv":true}"#,
    );
    assert_eq!(put["prev_kv"]["value"], "YmFy");
    let keys_only = call(
        &endpoint,
        "/v3/kv/range",
        r#"{"key":"AA==","range_end":"AA==","keys_only":true}"#,
    );
    assert_eq!(keys_only["count"], "1");
    assert_eq!(keys_only["kvs"][0]["version"], "2");
    assert!(keys_only["kvs"][0].get("value").is_none());
    // /v3beta/ is etcd 3.3's prefix for the same calls.
    let beta = call(
        &endpoint,
        "/v3beta/kv/range",
        r#"{"key":"Zm9v","count_only":true}"#,
    );
    assert_eq!(beta["count"], "1");
    assert!(beta.get("kvs").is_none());

    let txn = call(
        &endpoint,
        "/v3/kv/txn",
        r#"{"compare":[{"key":"Zm9v","result":"EQUAL","target":"VALUE","value":"YmF6"}],
            "success":[{"request_put":{"key":"Zm9v","value":"MQ=="}},
                       {"requestRange":{"key":"Zm9v"}}]}"#,
    );
    assert_eq!(txn["succeeded"], true);
    assert!(txn["responses"][0]["response_put"]["header"].is_object());
    assert_eq!(
        txn["responses"][1]["response_range"]["kvs"][0]["value"],
        "MQ=="
    );
    let failed = call(
        &endpoint,
        "/v3/kv/txn",
        r#"{"compare":[{"key":"Zm9v","target":"VERSION","result":"GREATER","version":"100"}]}"#,
    );
    assert!(failed.get("succeeded").is_none(), "false is left out");

    let deleted = call(
        &endpoint,
        "/v3/kv/deleterange",
        r#"{"key":"Zm9v","prev_kv":true}"#,
    );
    assert_eq!(deleted["deleted"], "1");
    assert_eq!(deleted["prev_kvs"][0]["key"], "Zm9v");

    let compacted = call(
        &endpoint,
        "/v3/kv/compaction",
        &format!(r#"{{"revision":"{revision}"}}"#),
    );
    assert_header(&compacted);
    // A gRPC error from the server: grpc-gateway's status, body and trailer.
    let future = post(&endpoint, "/v3/kv/compaction", r#"{"revision":"1000000"}"#);
    assert_eq!(future.status, 400);
    assert_eq!(
        future.text(),
        "{\"error\":\"etcdserver: mvcc: required revision is a future revision\",\
         \"message\":\"etcdserver: mvcc: required revision is a future revision\",\"code\":11}"
    );
    assert!(future.chunked);
    assert_eq!(future.header("Trailer"), Some("Grpc-Trailer-Content-Type"));
    assert_eq!(
        future.trailers,
        vec![(
            "Grpc-Trailer-Content-Type".to_string(),
            "application/grpc".to_string()
        )]
    );
    let compacted_read = post(
        &endpoint,
        "/v3/kv/range",
        &format!(r#"{{"key":"Zm9v","revision":"{}"}}"#, revision - 1),
    );
    assert_eq!(compacted_read.status, 400, "{}", compacted_read.text());
    assert_eq!(compacted_read.json()["code"], 11);
}

#[test]
fn leases_grant_keep_alive_and_revoke() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = start_capstan(dir.path());
    let endpoint = server.endpoint();

    let granted = call(&endpoint, "/v3/lease/grant", r#"{"TTL":"60","ID":"1234"}"#);
    assert_header(&granted);
    assert_eq!(granted["ID"], "1234");
    assert_eq!(granted["TTL"], "60");
    call(
        &endpoint,
        "/v3/kv/put",
        r#"{"key":"bGVhc2Vk","value":"eA==","lease":"1234"}"#,
    );

    // LeaseKeepAlive: one answer per request in the body, then the end of the stream.
    let mut stream = Stream::open(
        &endpoint,
        "/v3/lease/keepalive",
        r#"{"ID":"1234"} {"ID":"1234"}"#,
    );
    assert_eq!(stream.status(), 200);
    assert!(stream
        .head()
        .1
        .iter()
        .any(|(name, value)| name == "Transfer-Encoding" && value == "chunked"));
    for _ in 0..2 {
        let answer = stream.next().expect("a keep-alive answer");
        assert_header(&answer["result"]);
        assert_eq!(answer["result"]["ID"], "1234");
        assert_eq!(answer["result"]["TTL"], "60");
    }
    assert!(stream.next().is_none());

    let ttl = call(
        &endpoint,
        "/v3/lease/timetolive",
        r#"{"ID":"1234","keys":true}"#,
    );
    assert_eq!(ttl["grantedTTL"], "60");
    assert_eq!(ttl["keys"], serde_json::json!(["bGVhc2Vk"]));
    let leases = call(&endpoint, "/v3/lease/leases", "{}");
    assert_eq!(leases["leases"], serde_json::json!([{"ID": "1234"}]));
    let alias = call(&endpoint, "/v3/kv/lease/leases", "{}");
    assert_eq!(alias["leases"], leases["leases"]);

    call(&endpoint, "/v3/kv/lease/revoke", r#"{"ID":"1234"}"#);
    let gone = call(&endpoint, "/v3/kv/range", r#"{"key":"bGVhc2Vk"}"#);
    assert!(gone.get("kvs").is_none());
    let revoked = call(&endpoint, "/v3/kv/lease/timetolive", r#"{"ID":"1234"}"#);
    assert_eq!(revoked["TTL"], "-1");
    let missing = post(&endpoint, "/v3/lease/revoke", r#"{"ID":"1234"}"#);
    assert_eq!(missing.status, 404);
    assert_eq!(
        missing.text(),
        "{\"error\":\"etcdserver: requested lease not found\",\
         \"message\":\"etcdserver: requested lease not found\",\"code\":5}"
    );
    // A connection kept alive serves the next request once a stream has ended.
    let mut connection = connect(&endpoint);
    send(
        &mut connection,
        "POST",
        "/v3/lease/grant",
        br#"{"TTL":"60","ID":"5"}"#,
        false,
    );
    send(
        &mut connection,
        "POST",
        "/v3/lease/keepalive",
        br#"{"ID":"5"}"#,
        false,
    );
    send(&mut connection, "POST", "/v3/lease/leases", b"{}", true);
    let mut reader = BufReader::new(connection);
    let (status, headers) = read_head(&mut reader);
    assert_eq!(status, 200);
    let length: usize = headers
        .iter()
        .find(|(name, _)| name == "Content-Length")
        .and_then(|(_, value)| value.parse().ok())
        .expect("a length");
    let mut granted = vec![0u8; length];
    reader.read_exact(&mut granted).expect("the grant");
    let (status, _) = read_head(&mut reader);
    assert_eq!(status, 200);
    let mut trailers = Vec::new();
    let piece = read_chunk(&mut reader, &mut trailers).expect("a keep-alive answer");
    assert!(String::from_utf8_lossy(&piece).contains("\"TTL\":\"60\""));
    assert!(read_chunk(&mut reader, &mut trailers).is_none());
    let (status, _) = read_head(&mut reader);
    assert_eq!(status, 200, "the request after the stream");

    // Keep-alive of a lease that does not exist answers TTL 0 (left out), as etcd does.
    let mut stream = Stream::open(&endpoint, "/v3/lease/keepalive", r#"{"ID":"99999"}"#);
    let answer = stream.next().expect("an answer");
    assert_eq!(answer["result"]["ID"], "99999");
    assert!(answer["result"].get("TTL").is_none());
    assert!(stream.next().is_none());
}

#[test]
fn watch_streams_events_until_the_client_leaves() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = start_capstan(dir.path());
    let endpoint = server.endpoint();

    let key = base64("watched");
    let mut watch = Stream::open(
        &endpoint,
        "/v3/watch",
        &format!(r#"{{"create_request":{{"key":"{key}","prev_kv":true}}}}"#),
    );
    assert_eq!(watch.status(), 200);
    let created = watch.next().expect("the created answer");
    assert_eq!(created["result"]["created"], true);
    assert_header(&created["result"]);
    for value in ["one", "two"] {
        call(
            &endpoint,
            "/v3/kv/put",
            &format!(r#"{{"key":"{key}","value":"{}"}}"#, base64(value)),
        );
        let event = watch.next().expect("an event");
        let kv = &event["result"]["events"][0]["kv"];
        assert_eq!(kv["key"], key.as_str());
        assert_eq!(kv["value"], base64(value).as_str());
        assert!(
            event["result"]["events"][0].get("type").is_none(),
            "PUT is 0"
        );
    }
    call(
        &endpoint,
        "/v3/kv/deleterange",
        &format!(r#"{{"key":"{key}"}}"#),
    );
    let deleted = watch.next().expect("a delete event");
    assert_eq!(deleted["result"]["events"][0]["type"], "DELETE");
    assert_eq!(
        deleted["result"]["events"][0]["prev_kv"]["value"],
        base64("two").as_str()
    );
    drop(watch);

    // A watch whose start revision was compacted is cancelled with compact_revision.
    let put = call(&endpoint, "/v3/kv/put", r#"{"key":"eA==","value":"eA=="}"#);
    let revision = put["header"]["revision"]
        .as_str()
        .expect("revision")
        .to_string();
    call(
        &endpoint,
        "/v3/kv/compaction",
        &format!(r#"{{"revision":"{revision}"}}"#),
    );
    let mut compacted = Stream::open(
        &endpoint,
        "/v3/watch",
        r#"{"create_request":{"key":"eA==","start_revision":"1"}}"#,
    );
    let mut answers = vec![compacted.next().expect("an answer")];
    if answers[0]["result"].get("compact_revision").is_none() {
        answers.push(compacted.next().expect("the cancel"));
    }
    let cancel = answers.last().expect("an answer");
    assert_eq!(cancel["result"]["canceled"], true);
    assert_eq!(cancel["result"]["compact_revision"], revision.as_str());

    // Many watch streams opened and dropped leave the member serving.
    for _ in 0..20 {
        let mut watch = Stream::open(
            &endpoint,
            "/v3/watch",
            r#"{"create_request":{"key":"eQ=="}}"#,
        );
        watch.next().expect("created");
    }
    call(&endpoint, "/v3/kv/range", r#"{"key":"eQ=="}"#);
}

#[test]
fn cluster_and_maintenance() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = start_capstan(dir.path());
    let endpoint = server.endpoint();

    // A member publishes its client URLs through raft just after it starts, as etcd's does.
    let mut members = call(&endpoint, "/v3/cluster/member/list", "{}");
    for _ in 0..100 {
        if members["members"][0].get("clientURLs").is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        members = call(&endpoint, "/v3/cluster/member/list", "{}");
    }
    let member = &members["members"][0];
    assert!(member["ID"]
        .as_str()
        .is_some_and(|id| id.parse::<u64>().is_ok()));
    assert_eq!(
        member["clientURLs"],
        serde_json::json!([server.url()]),
        "{members}"
    );
    assert_eq!(members["header"]["member_id"], member["ID"]);

    let status = call(&endpoint, "/v3/maintenance/status", "{}");
    assert_header(&status);
    assert_eq!(status["leader"], member["ID"]);
    for field in [
        "version",
        "dbSize",
        "raftIndex",
        "raftTerm",
        "raftAppliedIndex",
    ] {
        assert!(status[field].is_string(), "{field}: {status}");
    }
    let alarms = call(&endpoint, "/v3/maintenance/alarm", r#"{"action":"GET"}"#);
    assert!(alarms.get("alarms").is_none());
    let hash = call(&endpoint, "/v3/maintenance/hash", "{}");
    assert!(hash["hash"].is_u64(), "uint32 is a number: {hash}");
    let hash_kv = call(&endpoint, "/v3/maintenance/hashkv", "{}");
    assert!(hash_kv["hash"].is_u64());
    call(&endpoint, "/v3/maintenance/defragment", "{}");

    // Snapshot: blobs in base64, the last one with no remaining bytes.
    let mut snapshot = Stream::open(&endpoint, "/v3/maintenance/snapshot", "{}");
    assert_eq!(snapshot.status(), 200);
    let mut pieces = 0;
    let mut last = Value::Null;
    while let Some(piece) = snapshot.next() {
        assert!(piece["result"]["blob"].is_string());
        assert!(piece["result"].get("header").is_none(), "etcd sends none");
        pieces += 1;
        last = piece;
    }
    assert!(pieces >= 1);
    assert!(last["result"].get("remaining_bytes").is_none());

    let bad_transferee = post(
        &endpoint,
        "/v3/maintenance/transfer-leadership",
        r#"{"targetID":"1"}"#,
    );
    assert_eq!(bad_transferee.status, 412, "{}", bad_transferee.text());
    assert_eq!(bad_transferee.json()["code"], 9);
}

#[test]
fn lock_and_election() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = start_capstan(dir.path());
    let endpoint = server.endpoint();

    let lease = call(&endpoint, "/v3/lease/grant", r#"{"TTL":"60"}"#)["ID"]
        .as_str()
        .expect("a lease id")
        .to_string();
    let name = base64("lock");
    let locked = call(
        &endpoint,
        "/v3/lock/lock",
        &format!(r#"{{"name":"{name}","lease":"{lease}"}}"#),
    );
    let key = locked["key"].as_str().expect("the lock key").to_string();
    assert!(key.starts_with(&base64("lock/")[..6]), "{key}");
    let held = call(&endpoint, "/v3/kv/range", &format!(r#"{{"key":"{key}"}}"#));
    assert_eq!(held["count"], "1");
    call(
        &endpoint,
        "/v3/lock/unlock",
        &format!(r#"{{"key":"{key}"}}"#),
    );
    let released = call(&endpoint, "/v3/kv/range", &format!(r#"{{"key":"{key}"}}"#));
    assert!(released.get("kvs").is_none());

    let election = base64("election");
    let none = post(
        &endpoint,
        "/v3/election/leader",
        &format!(r#"{{"name":"{election}"}}"#),
    );
    assert_eq!(none.status, 500);
    assert_eq!(
        none.text(),
        "{\"error\":\"election: no leader\",\"message\":\"election: no leader\",\"code\":2}"
    );
    let mut observe = Stream::open(
        &endpoint,
        "/v3/election/observe",
        &format!(r#"{{"name":"{election}"}}"#),
    );
    let campaign = call(
        &endpoint,
        "/v3/election/campaign",
        &format!(
            r#"{{"name":"{election}","lease":"{lease}","value":"{}"}}"#,
            base64("v1")
        ),
    );
    let leader = &campaign["leader"];
    assert_eq!(leader["name"], election.as_str());
    assert_eq!(leader["lease"], lease.as_str());
    assert!(leader["rev"].is_string());
    let observed = observe.next().expect("the first leader");
    assert_eq!(observed["result"]["kv"]["value"], base64("v1").as_str());

    call(
        &endpoint,
        "/v3/election/proclaim",
        &format!(r#"{{"leader":{leader},"value":"{}"}}"#, base64("v2")),
    );
    let observed = observe.next().expect("the proclaimed value");
    assert_eq!(observed["result"]["kv"]["value"], base64("v2").as_str());
    let current = call(
        &endpoint,
        "/v3/election/leader",
        &format!(r#"{{"name":"{election}"}}"#),
    );
    assert_eq!(current["kv"]["value"], base64("v2").as_str());
    call(
        &endpoint,
        "/v3/election/resign",
        &format!(r#"{{"leader":{leader}}}"#),
    );
    let after = post(
        &endpoint,
        "/v3/election/leader",
        &format!(r#"{{"name":"{election}"}}"#),
    );
    assert_eq!(after.status, 500);
}

#[test]
fn errors_as_grpc_gateway_writes_them() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = start_capstan(dir.path());
    let endpoint = server.endpoint();

    let cases: &[(&str, &str, u16, &str)] = &[
        (
            "/v3/kv/range",
            "not json",
            400,
            "{\"error\":\"invalid character 'o' in literal null (expecting 'u')\",\
             \"message\":\"invalid character 'o' in literal null (expecting 'u')\",\"code\":3}",
        ),
        (
            "/v3/kv/put",
            "garbage",
            400,
            "{\"error\":\"invalid character 'g' looking for beginning of value\",\
             \"message\":\"invalid character 'g' looking for beginning of value\",\"code\":3}",
        ),
        (
            "/v3/kv/range",
            "[]",
            400,
            "{\"error\":\"json: cannot unmarshal array into Go value of type \
             map[string]json.RawMessage\",\"message\":\"json: cannot unmarshal array into Go \
             value of type map[string]json.RawMessage\",\"code\":3}",
        ),
        (
            "/v3/kv/range",
            r#"{"key":"%%%"}"#,
            400,
            "{\"error\":\"illegal base64 data at input byte 0\",\
             \"message\":\"illegal base64 data at input byte 0\",\"code\":3}",
        ),
        (
            "/v3/kv/range",
            "",
            400,
            "{\"error\":\"etcdserver: key is not provided\",\
             \"message\":\"etcdserver: key is not provided\",\"code\":3}",
        ),
        (
            "/v3/watch",
            "garbage",
            500,
            "{\"error\":\"invalid character 'g' looking for beginning of value\",\
             \"message\":\"invalid character 'g' looking for beginning of value\",\"code\":2}",
        ),
    ];
    for (path, body, status, expected) in cases {
        let reply = post(&endpoint, path, body);
        assert_eq!(reply.status, *status, "{path} {body}: {}", reply.text());
        assert_eq!(reply.text(), *expected, "{path} {body}");
        assert_eq!(reply.header("Content-Type"), Some("application/json"));
    }

    let unknown = post(&endpoint, "/v3/kv/nothing", "{}");
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.text(), "Not Found\n");
    let wrong_method = request(&endpoint, "GET", "/v3/kv/range", b"");
    assert_eq!(wrong_method.status, 405);
    assert_eq!(wrong_method.text(), "Method Not Allowed\n");

    // Auth is not implemented: its paths answer the gRPC port's Unimplemented.
    let auth = post(&endpoint, "/v3/auth/user/list", "{}");
    assert_eq!(auth.status, 501);
    assert_eq!(auth.json()["code"], 12);
    let not_json = post(&endpoint, "/v3/auth/enable", "x");
    assert_eq!(not_json.status, 400, "decoded before the call");

    // A value of 1 MiB (under the default --max-request-bytes of 1.5 MiB) is 1.33 MiB of
    // base64: accepted, as etcd accepts it.
    let megabyte = "eHh4".repeat(1 << 18);
    let stored = post(
        &endpoint,
        "/v3/kv/put",
        &format!(r#"{{"key":"YmlnCg==","value":"{megabyte}"}}"#),
    );
    assert_eq!(stored.status, 200, "{}", stored.text());

    // A request larger than the gRPC port accepts (--max-request-bytes + 512 KiB, encoded).
    let small = tempfile::tempdir().expect("temp dir");
    let limited = Server::start(Flavor::Capstan, small.path(), &["--max-request-bytes=1000"]);
    let value = "eHh4".repeat(200_000);
    let large = post(
        &limited.endpoint(),
        "/v3/kv/put",
        &format!(r#"{{"key":"Zm9v","value":"{value}"}}"#),
    );
    assert_eq!(large.status, 429, "{}", large.text());
    assert_eq!(large.json()["code"], 8);
    assert!(large.json()["message"]
        .as_str()
        .is_some_and(|message| message.starts_with("grpc: received message larger than max (600")));
    let too_large_for_etcd = post(
        &limited.endpoint(),
        "/v3/kv/put",
        &format!(r#"{{"key":"Zm9v","value":"{}"}}"#, "eHh4".repeat(1000)),
    );
    assert_eq!(too_large_for_etcd.status, 400);
    assert_eq!(
        too_large_for_etcd.json()["message"],
        "etcdserver: request is too large"
    );

    // Hostile bodies on every path: answers, never a crash.
    let hostile: &[&[u8]] = &[
        b"{",
        b"{\"key\":",
        b"{\"key\":\"Zm9v\",\"range_end\":{\"x\":[[[[[[[]]]]]]]}}",
        b"\xff\xfe\x00\x01",
        b"{\"ID\":\"99999999999999999999999\"}",
        b"{\"create_request\":{\"key\":\"Zm9v\",\"filters\":[\"NOPE\",7]}}",
        b"{\"compare\":[{\"target\":\"SIDEWAYS\"}]}",
        b"{\"success\":[{\"request_txn\":{\"success\":[{\"request_txn\":{}}]}}]}",
        b"null",
        b"\"just a string\"",
    ];
    // (path, whether it streams: a stream that has nothing to send sends no head, as Go's
    // server does not before the first message).
    for (path, streams) in [
        ("/v3/kv/range", false),
        ("/v3/kv/put", false),
        ("/v3/kv/txn", false),
        ("/v3/watch", true),
        ("/v3/lease/keepalive", false),
        ("/v3/lease/timetolive", false),
        ("/v3/election/observe", true),
        ("/v3/maintenance/alarm", false),
    ] {
        for body in hostile {
            let mut stream = connect(&endpoint);
            stream
                .set_read_timeout(Some(Duration::from_millis(500)))
                .expect("timeout");
            send(&mut stream, "POST", path, body, true);
            let mut reply = Vec::new();
            let _ = stream.read_to_end(&mut reply);
            let head = String::from_utf8_lossy(&reply);
            assert!(
                head.starts_with("HTTP/1.1 ") || (streams && head.is_empty()),
                "{path} {}: {head}",
                String::from_utf8_lossy(body)
            );
        }
    }
    assert_header(&call(&endpoint, "/v3/maintenance/status", "{}"));
}

/// The shape of a JSON value: objects by their keys' shapes, arrays by their first item,
/// strings, numbers and booleans by kind.
fn shape(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, value)| (key.clone(), shape(value)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().take(1).map(shape).collect()),
        Value::String(_) => Value::from("string"),
        Value::Number(_) => Value::from("number"),
        Value::Bool(_) => Value::from("bool"),
        Value::Null => Value::Null,
    }
}

#[test]
fn same_json_as_etcd_34() {
    require_tool("etcd", "etcd-server");
    let capstan_dir = tempfile::tempdir().expect("temp dir");
    let etcd_dir = tempfile::tempdir().expect("temp dir");
    let capstan = start_capstan(capstan_dir.path());
    let etcd = Server::start(Flavor::Etcd, etcd_dir.path(), &[]);
    // (path, body): answers compared by status, header names and JSON shape.
    let requests: &[(&str, &str)] = &[
        ("/v3/kv/put", r#"{"key":"Zm9v","value":"YmFy"}"#),
        (
            "/v3/kv/put",
            r#"{"key":"Zm9v","value":"YmF6","prev_kv":true}"#,
        ),
        ("/v3/kv/range", r#"{"key":"Zm9v"}"#),
        (
            "/v3/kv/range",
            r#"{"key":"AA==","range_end":"AA==","countOnly":true}"#,
        ),
        ("/v3/kv/range", r#"{"key":"bm9uZQ=="}"#),
        (
            "/v3/kv/txn",
            r#"{"compare":[{"key":"Zm9v","result":"EQUAL","target":"VERSION","version":"2"}],"success":[{"request_put":{"key":"Zm9v","value":"MQ=="}},{"request_range":{"key":"Zm9v"}},{"request_delete_range":{"key":"eA=="}}]}"#,
        ),
        (
            "/v3/kv/txn",
            r#"{"compare":[{"key":"Zm9v","target":"CREATE","result":"LESS","create_revision":"1"}],"failure":[{"requestRange":{"key":"Zm9v"}}]}"#,
        ),
        ("/v3/kv/deleterange", r#"{"key":"Zm9v","prev_kv":true}"#),
        ("/v3/kv/compaction", r#"{"revision":"2"}"#),
        ("/v3/kv/compaction", r#"{"revision":"100000"}"#),
        ("/v3/kv/range", r#"{"key":"Zm9v","revision":"1"}"#),
        ("/v3/lease/grant", r#"{"TTL":"60","ID":"1234"}"#),
        ("/v3/lease/grant", r#"{"TTL":"60","ID":"1234"}"#),
        ("/v3/lease/timetolive", r#"{"ID":"1234","keys":true}"#),
        ("/v3/kv/lease/timetolive", r#"{"ID":"1234"}"#),
        ("/v3/lease/leases", "{}"),
        ("/v3/lease/revoke", r#"{"ID":"1234"}"#),
        ("/v3/kv/lease/revoke", r#"{"ID":"1234"}"#),
        ("/v3/lease/timetolive", r#"{"ID":"1234"}"#),
        ("/v3/lock/lock", r#"{"name":"bG9jaw=="}"#),
        ("/v3/election/leader", r#"{"name":"ZWw="}"#),
        ("/v3/maintenance/hash", "{}"),
        ("/v3/maintenance/transfer-leadership", r#"{"targetID":"1"}"#),
        ("/v3/kv/range", "not json"),
        ("/v3/kv/range", "[]"),
        ("/v3/kv/range", r#"{"key":"%%%"}"#),
        ("/v3/kv/range", r#"{"key":5}"#),
        ("/v3/kv/range", r#"{"unknown_field":1}"#),
        ("/v3/nope", "{}"),
    ];
    for (path, body) in requests {
        let ours = post(&capstan.endpoint(), path, body);
        let theirs = post(&etcd.endpoint(), path, body);
        let context = format!(
            "{path} {body}\ncapstan: {}\netcd: {}",
            ours.text(),
            theirs.text()
        );
        assert_eq!(ours.status, theirs.status, "{context}");
        let names = |reply: &Reply| -> Vec<String> {
            reply
                .headers
                .iter()
                .map(|(name, _)| name.clone())
                .filter(|name| name != "Date")
                .collect()
        };
        assert_eq!(names(&ours), names(&theirs), "{context}");
        assert_eq!(ours.trailers, theirs.trailers, "{context}");
        if theirs.header("Content-Type") == Some("application/json") {
            assert_eq!(shape(&ours.json()), shape(&theirs.json()), "{context}");
            if theirs.status != 200 {
                assert_eq!(ours.text(), theirs.text(), "{context}");
            }
        } else {
            assert_eq!(ours.text(), theirs.text(), "{context}");
        }
    }
    // Streams: the same pieces' shapes.
    let grant = r#"{"TTL":"60","ID":"77"}"#;
    call(&capstan.endpoint(), "/v3/lease/grant", grant);
    call(&etcd.endpoint(), "/v3/lease/grant", grant);
    for (path, body, count) in [
        ("/v3/lease/keepalive", r#"{"ID":"77"}"#, 1),
        ("/v3/watch", r#"{"create_request":{"key":"d2s="}}"#, 1),
        // Go's base64 ignores the unused bits of `t`: the range is empty, so refused.
        (
            "/v3/watch",
            r#"{"createRequest":{"key":"d2s=","range_end":"d2t="}}"#,
            1,
        ),
    ] {
        let mut ours = Stream::open(&capstan.endpoint(), path, body);
        let mut theirs = Stream::open(&etcd.endpoint(), path, body);
        assert_eq!(ours.status(), theirs.status());
        assert_eq!(ours.header_names(), theirs.header_names(), "{path}");
        for _ in 0..count {
            let (ours, theirs) = (ours.next(), theirs.next());
            assert_eq!(
                ours.as_ref().map(shape),
                theirs.as_ref().map(shape),
                "{path}: {ours:?} vs {theirs:?}"
            );
        }
    }
}

/// OpenStack's etcd3gw (PyPI), the client the issue names: put, get, get_prefix, delete,
/// lease, watch and lock against Capstan, unchanged.
#[test]
fn etcd3gw_client_works_unchanged() {
    let probe = Command::new("python3")
        .args(["-c", "import etcd3gw"])
        .output();
    if !probe.is_ok_and(|output| output.status.success()) {
        println!(
            "SKIPPED: python3 cannot import etcd3gw (install it with \
             `python3 -m pip install --break-system-packages etcd3gw`)"
        );
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let server = start_capstan(dir.path());
    let script = r#"
import sys, threading, time
import etcd3gw
client = etcd3gw.client(host="127.0.0.1", port=int(sys.argv[1]), timeout=10)
assert client.status()["version"], client.status()
assert len(client.members()) == 1
assert client.put("/gw/a", "1")
assert client.put("/gw/b", "2")
assert client.get("/gw/a") == [b"1"], client.get("/gw/a")
got = client.get("/gw/a", metadata=True)
assert got[0][1]["key"] == b"/gw/a", got
prefix = sorted(value for value, _ in client.get_prefix("/gw/"))
assert prefix == [b"1", b"2"], prefix
assert client.delete("/gw/a")
assert not client.delete("/gw/a")
assert client.get("/gw/a") == []
assert client.create("/gw/c", "3")
assert not client.create("/gw/c", "4")
assert client.replace("/gw/c", "3", "5")
assert client.get("/gw/c") == [b"5"]
lease = client.lease(ttl=30)
assert client.put("/gw/leased", "x", lease=lease)
assert lease.refresh() > 0
assert 0 < lease.ttl() <= 30
assert lease.keys() == [b"/gw/leased"], lease.keys()
assert lease.revoke()
assert client.get("/gw/leased") == []
events, cancel = client.watch("/gw/w")
def later():
    time.sleep(0.5)
    client.put("/gw/w", "watched")
threading.Thread(target=later).start()
event = next(events)
assert event["kv"]["value"] == b"watched", event
cancel()
events, cancel = client.watch_prefix("/gw/p/")
threading.Thread(target=lambda: (time.sleep(0.5), client.put("/gw/p/1", "p"))).start()
event = next(events)
assert event["kv"]["key"] == b"/gw/p/1", event
cancel()
lock = client.lock("gw-lock", ttl=30)
assert lock.acquire()
assert lock.is_acquired()
other = client.lock("gw-lock", ttl=30)
assert not other.is_acquired()
assert lock.release()
assert not lock.is_acquired()
with client.lock("gw-lock-2", ttl=30) as held:
    assert held.is_acquired()
print("etcd3gw OK")
"#;
    let output = Command::new("python3")
        .args(["-c", script, &server.port.to_string()])
        .output()
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("etcd3gw OK"),
        "etcd3gw failed:\n{stdout}\n{stderr}"
    );
}
