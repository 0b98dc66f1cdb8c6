//! Watch: etcd 3.4's behaviour through `etcdctl watch` and `etcd-client`, compared with Debian's
//! etcd 3.4 wherever it is deterministic; ordering, no gaps, no duplicates and revision
//! atomicity for ~1000 watchers on both shards under concurrent writers and across a restart;
//! stalled readers that neither block other watchers nor grow the server's memory, then catch
//! up from history or are cancelled by compaction. Section 6 holds edge cases found by reading
//! the design: a half-closed request stream, catching-up watchers starved by stalled ones,
//! progress notifications piling up for an unread stream, ids of compaction-cancelled watchers.
mod common;
use common::*;

use bytes::Bytes;
use capstan_proto::etcdserverpb::watch_request::RequestUnion;
use capstan_proto::etcdserverpb::{
    WatchCreateRequest, WatchProgressRequest, WatchRequest, WatchResponse as PbWatchResponse,
};
use etcd_client::{
    Client, Compare, CompareOp, DeleteOptions, EventType, Txn, TxnOp, TxnOpResponse,
    WatchFilterType, WatchOptions, WatchResponse, WatchStream, Watcher,
};
use prost::Message;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// Generous bound for one expected output line or response (only to avoid hangs).
const TIMEOUT: Duration = Duration::from_secs(30);
/// Generous bound for a whole phase of many watchers to catch up.
const PHASE_TIMEOUT: Duration = Duration::from_secs(120);
const DUPLICATE_WATCH_ID: &str = "mvcc: duplicate watch ID provided on the WatchStream";
const EMPTY_WATCH_RANGE: &str = "mvcc: watcher range is empty";

// ---------------------------------------------------------------------------------------------
// Events and responses as the tests compare them
// ---------------------------------------------------------------------------------------------

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// One watch event.
#[derive(Clone, PartialEq, Eq)]
struct Ev {
    revision: i64,
    delete: bool,
    key: String,
    value: String,
    create_revision: i64,
    version: i64,
    /// (value, mod_revision) of the previous key-value, when the response carried it.
    prev: Option<(String, i64)>,
}

fn abbreviate(value: &str) -> String {
    if value.len() <= 24 {
        value.to_string()
    } else {
        let head: String = value.chars().take(8).collect();
        format!("{head}..({}B)", value.len())
    }
}

impl fmt::Debug for Ev {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}@{} {}={} c{} v{}",
            if self.delete { "DEL" } else { "PUT" },
            self.revision,
            self.key,
            abbreviate(&self.value),
            self.create_revision,
            self.version
        )?;
        if let Some((value, revision)) = &self.prev {
            write!(f, " prev={}@{revision}", abbreviate(value))?;
        }
        Ok(())
    }
}

fn ev(event: &etcd_client::Event) -> Ev {
    let kv = event.kv().expect("event without kv");
    Ev {
        revision: kv.mod_revision(),
        delete: event.event_type() == EventType::Delete,
        key: text(kv.key()),
        value: text(kv.value()),
        create_revision: kv.create_revision(),
        version: kv.version(),
        prev: event
            .prev_kv()
            .map(|prev| (text(prev.value()), prev.mod_revision())),
    }
}

fn pb_ev(event: &capstan_proto::mvccpb::Event) -> Ev {
    let kv = event.kv.as_ref().expect("event without kv");
    Ev {
        revision: kv.mod_revision,
        delete: event.r#type == 1,
        key: text(&kv.key),
        value: text(&kv.value),
        create_revision: kv.create_revision,
        version: kv.version,
        prev: event
            .prev_kv
            .as_ref()
            .map(|prev| (text(&prev.value), prev.mod_revision)),
    }
}

fn events_of(response: &WatchResponse) -> Vec<Ev> {
    response.events().iter().map(ev).collect()
}

fn revision_of(response: &WatchResponse) -> i64 {
    response.header().map_or(0, |header| header.revision())
}

/// A response that is neither created, canceled nor carries events.
fn is_progress(response: &WatchResponse) -> bool {
    !response.created() && !response.canceled() && response.events().is_empty()
}

fn describe(response: &WatchResponse) -> String {
    let mut line = format!("id={} rev={}", response.watch_id(), revision_of(response));
    if response.created() {
        line.push_str(" created");
    }
    if response.canceled() {
        line.push_str(" canceled");
    }
    if response.compact_revision() != 0 {
        line.push_str(&format!(
            " compact_revision={}",
            response.compact_revision()
        ));
    }
    if !response.cancel_reason().is_empty() {
        line.push_str(&format!(" reason={:?}", response.cancel_reason()));
    }
    if !response.events().is_empty() {
        line.push_str(&format!(" events={:?}", events_of(response)));
    }
    line
}

async fn next_response(stream: &mut WatchStream) -> WatchResponse {
    tokio::time::timeout(TIMEOUT, stream.message())
        .await
        .unwrap_or_else(|_| panic!("no watch response within {TIMEOUT:?}"))
        .expect("watch stream error")
        .expect("watch stream ended")
}

async fn put(client: &mut Client, key: &str, value: &str) -> i64 {
    client
        .put(key, value, None)
        .await
        .expect("put")
        .header()
        .expect("put header")
        .revision()
}

async fn latest_revision(client: &mut Client) -> i64 {
    client
        .get("no-such-key", None)
        .await
        .expect("get")
        .header()
        .expect("get header")
        .revision()
}

fn put_ev(revision: i64, key: &str, value: &str, create: i64, version: i64) -> Ev {
    Ev {
        revision,
        delete: false,
        key: key.to_string(),
        value: value.to_string(),
        create_revision: create,
        version,
        prev: None,
    }
}

fn del_ev(revision: i64, key: &str) -> Ev {
    Ev {
        revision,
        delete: true,
        key: key.to_string(),
        value: String::new(),
        create_revision: 0,
        version: 0,
        prev: None,
    }
}

fn with_prev(mut event: Ev, value: &str, revision: i64) -> Ev {
    event.prev = Some((value.to_string(), revision));
    event
}

/// Line-by-line comparison of two transcripts, Capstan against etcd.
fn assert_same_transcript(capstan: &[String], etcd: &[String], what: &str) {
    let length = capstan.len().max(etcd.len());
    let mut differences = Vec::new();
    for index in 0..length {
        let ours = capstan.get(index).map_or("<none>", String::as_str);
        let theirs = etcd.get(index).map_or("<none>", String::as_str);
        if ours != theirs {
            differences.push(format!(
                "  line {index}:\n    etcd:    {theirs}\n    capstan: {ours}"
            ));
        }
    }
    assert!(
        differences.is_empty(),
        "{what}: Capstan differs from etcd 3.4:\n{}\nfull etcd transcript:\n  {}",
        differences.join("\n"),
        etcd.join("\n  ")
    );
}

// ---------------------------------------------------------------------------------------------
// Raw HTTP/2 gRPC Watch streams (full control over reading; every response field visible)
// ---------------------------------------------------------------------------------------------

/// An h2 connection whose driver can be paused: paused, the client reads nothing from its
/// socket at all.
struct RawConnection {
    client: h2::client::SendRequest<Bytes>,
    paused: tokio::sync::watch::Sender<bool>,
}

impl RawConnection {
    fn pause(&self) {
        let _ = self.paused.send(true);
    }

    fn resume(&self) {
        let _ = self.paused.send(false);
    }
}

async fn raw_connect(endpoint: &str) -> RawConnection {
    raw_connect_with_window(endpoint, None).await
}

/// With `window`, the client announces that much flow-control window (stream and connection),
/// so only TCP stops a server writing to a paused client.
async fn raw_connect_with_window(endpoint: &str, window: Option<u32>) -> RawConnection {
    let tcp = tokio::net::TcpStream::connect(endpoint)
        .await
        .expect("tcp connect");
    let mut builder = h2::client::Builder::new();
    // Watch responses without events are small DATA frames; many may be queued here.
    builder.data_frame_budget(1 << 30);
    if let Some(window) = window {
        builder
            .initial_window_size(window)
            .initial_connection_window_size(window);
    }
    let (client, connection) = builder.handshake(tcp).await.expect("h2 handshake");
    let (paused, mut pause_changes) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        let mut connection = std::pin::pin!(connection);
        loop {
            if *pause_changes.borrow_and_update() {
                if pause_changes.changed().await.is_err() {
                    return;
                }
                continue;
            }
            tokio::select! {
                _ = connection.as_mut() => return,
                changed = pause_changes.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
            }
        }
    });
    RawConnection { client, paused }
}

fn framed<M: Message>(message: &M) -> Bytes {
    let body = message.encode_to_vec();
    let mut out = vec![0u8];
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
    Bytes::from(out)
}

struct RawWatch {
    send: h2::SendStream<Bytes>,
    response: Option<h2::client::ResponseFuture>,
    body: Option<h2::RecvStream>,
    buffer: Vec<u8>,
}

impl RawWatch {
    async fn open(connection: &RawConnection, endpoint: &str) -> RawWatch {
        let request = http::Request::builder()
            .method("POST")
            .uri(format!("http://{endpoint}/etcdserverpb.Watch/Watch"))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(())
            .expect("request");
        let mut client = connection.client.clone().ready().await.expect("h2 ready");
        let (response, send) = client
            .send_request(request, false)
            .expect("send Watch request");
        RawWatch {
            send,
            response: Some(response),
            body: None,
            buffer: Vec::new(),
        }
    }

    fn request(&mut self, union: RequestUnion) {
        let message = WatchRequest {
            request_union: Some(union),
        };
        self.send
            .send_data(framed(&message), false)
            .expect("send a watch request");
    }

    /// Sends a request and closes the client's side of the stream (as `grpcurl -d` does).
    fn request_and_close(&mut self, union: RequestUnion) {
        let message = WatchRequest {
            request_union: Some(union),
        };
        self.send
            .send_data(framed(&message), true)
            .expect("send the last watch request");
    }

    fn create(&mut self, create: WatchCreateRequest) {
        self.request(RequestUnion::CreateRequest(create));
    }

    fn request_progress(&mut self) {
        self.request(RequestUnion::ProgressRequest(WatchProgressRequest {}));
    }

    /// The next response; reading releases flow-control capacity.
    async fn next(&mut self) -> Result<PbWatchResponse, String> {
        loop {
            if self.buffer.len() >= 5 {
                let length = u32::from_be_bytes(self.buffer[1..5].try_into().expect("4 bytes"));
                let end = 5 + length as usize;
                if self.buffer.len() >= end {
                    let response = PbWatchResponse::decode(&self.buffer[5..end])
                        .map_err(|error| format!("undecodable WatchResponse: {error}"))?;
                    self.buffer.drain(..end);
                    return Ok(response);
                }
            }
            if self.body.is_none() {
                let response = self
                    .response
                    .take()
                    .expect("response future")
                    .await
                    .map_err(|error| format!("response head: {error}"))?;
                if response.status() != 200 {
                    return Err(format!("HTTP status {}", response.status()));
                }
                self.body = Some(response.into_body());
            }
            let body = self.body.as_mut().expect("body");
            match body.data().await {
                Some(Ok(chunk)) => {
                    let _ = body.flow_control().release_capacity(chunk.len());
                    self.buffer.extend_from_slice(&chunk);
                }
                Some(Err(error)) => return Err(format!("stream error: {error}")),
                None => {
                    let trailers = body.trailers().await;
                    return Err(format!("stream ended; trailers {trailers:?}"));
                }
            }
        }
    }

    /// The next response, or why there is none (also after [`TIMEOUT`]).
    async fn next_or_error(&mut self) -> Result<PbWatchResponse, String> {
        tokio::time::timeout(TIMEOUT, self.next())
            .await
            .unwrap_or_else(|_| Err(format!("nothing within {TIMEOUT:?}")))
    }

    async fn next_within(&mut self) -> PbWatchResponse {
        tokio::time::timeout(TIMEOUT, self.next())
            .await
            .unwrap_or_else(|_| panic!("no raw watch response within {TIMEOUT:?}"))
            .unwrap_or_else(|error| panic!("raw watch stream: {error}"))
    }
}

fn create_request(key: &str, range_end: &str) -> WatchCreateRequest {
    WatchCreateRequest {
        key: Bytes::copy_from_slice(key.as_bytes()),
        range_end: Bytes::copy_from_slice(range_end.as_bytes()),
        ..WatchCreateRequest::default()
    }
}

fn pb_is_progress(response: &PbWatchResponse) -> bool {
    !response.created && !response.canceled && response.events.is_empty()
}

// ---------------------------------------------------------------------------------------------
// 1. etcdctl watch, Capstan against etcd 3.4
// ---------------------------------------------------------------------------------------------

/// A running `etcdctl watch`, its stdout read line by line.
struct CtlWatch {
    label: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl CtlWatch {
    fn spawn(endpoint: &str, args: &[&str]) -> CtlWatch {
        require_tool("etcdctl", "etcd-client");
        let interactive = args.contains(&"-i");
        let mut child = Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={endpoint}"))
            .arg("watch")
            .args(args)
            .stdin(if interactive {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn etcdctl watch");
        let stdout = child.stdout.take().expect("etcdctl stdout");
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        CtlWatch {
            label: format!("etcdctl watch {}", args.join(" ")),
            stdin: child.stdin.take(),
            child,
            lines,
            seen: Vec::new(),
        }
    }

    fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("interactive etcdctl watch");
        writeln!(stdin, "{line}").expect("write etcdctl stdin");
        stdin.flush().expect("flush etcdctl stdin");
    }

    /// Reads lines until `done(lines so far)`; false if `wait` passes first.
    fn wait_until(&mut self, wait: Duration, done: impl Fn(&[String]) -> bool) -> bool {
        let deadline = Instant::now() + wait;
        while !done(&self.seen) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(mpsc::RecvTimeoutError::Timeout) => return false,
                Err(mpsc::RecvTimeoutError::Disconnected) => self.fail("etcdctl exited"),
            }
        }
        true
    }

    fn expect(&mut self, what: &str, done: impl Fn(&[String]) -> bool) {
        if !self.wait_until(TIMEOUT, done) {
            self.fail(&format!("{what} not printed within {TIMEOUT:?}"));
        }
    }

    fn fail(&mut self, why: &str) -> ! {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let mut stderr = String::new();
        if let Some(mut pipe) = self.child.stderr.take() {
            let _ = pipe.read_to_string(&mut stderr);
        }
        panic!(
            "{}: {why}; stdout so far {:?}; stderr {stderr:?}",
            self.label, self.seen
        );
    }

    /// Kills etcdctl and returns everything it printed.
    fn finish(mut self) -> Vec<String> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        while let Ok(line) = self.lines.recv_timeout(TIMEOUT) {
            self.seen.push(line);
        }
        std::mem::take(&mut self.seen)
    }
}

impl Drop for CtlWatch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ends_with(lines: &[String], tail: &[&str]) -> bool {
    lines.len() >= tail.len()
        && lines[lines.len() - tail.len()..]
            .iter()
            .zip(tail)
            .all(|(line, want)| line == want)
}

/// Writes sentinel values (`sentinel-N` to `key(N)`) until the watch prints one: from then on
/// the watch exists, so nothing written later can be missed. Sentinel events are stripped from
/// the output before comparing.
fn sync_watch(watch: &mut CtlWatch, endpoint: &str, key: impl Fn(usize) -> String) {
    for attempt in 0..20 {
        etcdctl_ok(
            endpoint,
            &["put", &key(attempt), &format!("sentinel-{attempt}")],
        );
        if watch.wait_until(Duration::from_secs(2), |seen| {
            seen.iter().any(|line| line.starts_with("sentinel-"))
        }) {
            return;
        }
    }
    watch.fail("never printed a sentinel write");
}

/// The output without sentinel events (`PUT`, key, `sentinel-N`: never with a prev_kv).
fn without_sentinels(lines: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut index = 0;
    while index < lines.len() {
        if lines[index] == "PUT"
            && lines
                .get(index + 2)
                .is_some_and(|value| value.starts_with("sentinel-"))
        {
            index += 3;
            continue;
        }
        out.push(lines[index].clone());
        index += 1;
    }
    out
}

fn ctl_revision(endpoint: &str) -> i64 {
    let output = etcdctl_ok(endpoint, &["get", "-w", "json", "no-such-key"]);
    let json: serde_json::Value = serde_json::from_str(&output).expect("etcdctl json");
    json["header"]["revision"]
        .as_i64()
        .unwrap_or_else(|| panic!("no header.revision in {output}"))
}

fn ctl_put(endpoint: &str, key: &str, value: &str) {
    assert_eq!(
        etcdctl_ok(endpoint, &["put", key, value]).trim(),
        "OK",
        "put {key}"
    );
}

/// Runs every etcdctl scenario; returns (name, stdout lines without sentinels).
fn etcdctl_watch_outputs(server: &Server) -> Vec<(&'static str, Vec<String>)> {
    let endpoint = server.endpoint();
    let ep = endpoint.as_str();
    let mut outputs = Vec::new();

    // One key, live.
    let mut watch = CtlWatch::spawn(ep, &["s1/k"]);
    sync_watch(&mut watch, ep, |_| "s1/k".to_string());
    ctl_put(ep, "s1/k", "one");
    ctl_put(ep, "s1/kk", "other");
    ctl_put(ep, "s1/k", "two");
    etcdctl_ok(ep, &["del", "s1/k"]);
    ctl_put(ep, "s1/k", "end");
    watch.expect("the last write", |seen| {
        ends_with(seen, &["PUT", "s1/k", "end"])
    });
    outputs.push(("key", without_sentinels(&watch.finish())));

    // A prefix, live: a txn's and a range delete's events.
    let mut watch = CtlWatch::spawn(ep, &["--prefix", "s2/"]);
    sync_watch(&mut watch, ep, |n| format!("s2/sentinel-{n}"));
    ctl_put(ep, "s2/a", "1");
    ctl_put(ep, "s2b", "outside");
    let txn = etcdctl(
        ep,
        &["txn"],
        Some("\nput s2/c 3\nput s2x/z outside\nput s2/b 2\n\n\n"),
    );
    assert!(txn.status.success(), "etcdctl txn: {txn:?}");
    assert!(
        String::from_utf8_lossy(&txn.stdout).starts_with("SUCCESS"),
        "{txn:?}"
    );
    etcdctl_ok(ep, &["del", "s2/a", "s2/d"]);
    ctl_put(ep, "s2/end", "end");
    watch.expect("the last write", |seen| {
        ends_with(seen, &["PUT", "s2/end", "end"])
    });
    outputs.push(("prefix", without_sentinels(&watch.finish())));

    // --rev: history first (a txn whose puts are not in key order), then live.
    let base = ctl_revision(ep);
    ctl_put(ep, "s3/a", "1");
    ctl_put(ep, "s3/b", "2");
    let txn = etcdctl(ep, &["txn"], Some("\nput s3/z 26\nput s3/a 3\n\n\n"));
    assert!(txn.status.success(), "etcdctl txn: {txn:?}");
    etcdctl_ok(ep, &["del", "s3/b"]);
    ctl_put(ep, "s3/c", "4");
    ctl_put(ep, "s3x", "outside");
    let from = format!("--rev={}", base + 2);
    let mut watch = CtlWatch::spawn(ep, &["--prefix", &from, "s3/"]);
    watch.expect("the replayed history", |seen| {
        ends_with(seen, &["PUT", "s3/c", "4"])
    });
    ctl_put(ep, "s3/d", "5");
    ctl_put(ep, "s3/end", "end");
    watch.expect("the last write", |seen| {
        ends_with(seen, &["PUT", "s3/end", "end"])
    });
    outputs.push(("rev", without_sentinels(&watch.finish())));

    // --prev-kv.
    ctl_put(ep, "s4/a", "old");
    let mut watch = CtlWatch::spawn(ep, &["--prefix", "--prev-kv", "s4/"]);
    sync_watch(&mut watch, ep, |n| format!("s4/sentinel-{n}"));
    ctl_put(ep, "s4/a", "new");
    ctl_put(ep, "s4/b", "first");
    etcdctl_ok(ep, &["del", "s4/a"]);
    ctl_put(ep, "s4/end", "end");
    watch.expect("the last write", |seen| {
        ends_with(seen, &["PUT", "s4/end", "end"])
    });
    outputs.push(("prev-kv", without_sentinels(&watch.finish())));

    // Interactive: `watch KEY`, then `progress`.
    let mut watch = CtlWatch::spawn(ep, &["-i"]);
    watch.send("watch s5/k");
    sync_watch(&mut watch, ep, |_| "s5/k".to_string());
    ctl_put(ep, "s5/k", "one");
    watch.expect("the first write", |seen| {
        ends_with(seen, &["PUT", "s5/k", "one"])
    });
    ctl_put(ep, "s5/other", "unwatched");
    let latest = ctl_revision(ep);
    watch.send("progress");
    watch.expect("a progress notification", |seen| {
        seen.last()
            .is_some_and(|line| line.starts_with("progress notify:"))
    });
    ctl_put(ep, "s5/k", "two");
    watch.expect("the second write", |seen| {
        ends_with(seen, &["PUT", "s5/k", "two"])
    });
    let mut lines = without_sentinels(&watch.finish());
    for line in &mut lines {
        if let Some(revision) = line.strip_prefix("progress notify: ") {
            assert_eq!(
                revision.parse::<i64>().ok(),
                Some(latest),
                "{:?}: `progress` reports the latest revision",
                server.flavor
            );
            *line = "progress notify: <latest revision>".to_string();
        }
    }
    outputs.push(("interactive", lines));
    outputs
}

#[test]
fn etcdctl_watch_matches_etcd_3_4() {
    let run = |flavor: Flavor| {
        let dir = tempfile::tempdir().expect("tempdir");
        let server = Server::start(flavor, dir.path(), &[]);
        etcdctl_watch_outputs(&server)
    };
    let etcd = run(Flavor::Etcd);
    let capstan = run(Flavor::Capstan);
    let expected: Vec<(&str, Vec<&str>)> = vec![
        (
            "key",
            vec![
                "PUT", "s1/k", "one", "PUT", "s1/k", "two", "DELETE", "s1/k", "", "PUT", "s1/k",
                "end",
            ],
        ),
        (
            "prefix",
            vec![
                "PUT", "s2/a", "1", "PUT", "s2/c", "3", "PUT", "s2/b", "2", "DELETE", "s2/a", "",
                "DELETE", "s2/b", "", "DELETE", "s2/c", "", "PUT", "s2/end", "end",
            ],
        ),
        (
            "rev",
            vec![
                "PUT", "s3/b", "2", "PUT", "s3/z", "26", "PUT", "s3/a", "3", "DELETE", "s3/b", "",
                "PUT", "s3/c", "4", "PUT", "s3/d", "5", "PUT", "s3/end", "end",
            ],
        ),
        (
            "prev-kv",
            vec![
                "PUT", "s4/a", "old", "s4/a", "new", "PUT", "s4/b", "first", "DELETE", "s4/a",
                "new", "s4/a", "", "PUT", "s4/end", "end",
            ],
        ),
        (
            "interactive",
            vec![
                "PUT",
                "s5/k",
                "one",
                "progress notify: <latest revision>",
                "PUT",
                "s5/k",
                "two",
            ],
        ),
    ];
    for (index, (name, want)) in expected.iter().enumerate() {
        let (etcd_name, etcd_lines) = &etcd[index];
        let (capstan_name, capstan_lines) = &capstan[index];
        assert_eq!((etcd_name, capstan_name), (name, name));
        assert_same_transcript(capstan_lines, etcd_lines, &format!("etcdctl watch {name}"));
        assert_eq!(etcd_lines, want, "etcd 3.4's output for {name}");
    }
}

// ---------------------------------------------------------------------------------------------
// 2. etcd-client: cancel, watch ids, filters, prev_kv, progress, many watches and streams
// ---------------------------------------------------------------------------------------------

/// Reads responses until one for `watch_id` with an event on `key`; returns all of them.
async fn read_until_event(
    stream: &mut WatchStream,
    watch_id: i64,
    key: &str,
) -> Vec<WatchResponse> {
    let mut responses = Vec::new();
    loop {
        let response = next_response(stream).await;
        let done = response.watch_id() == watch_id
            && response
                .events()
                .iter()
                .any(|event| event.kv().is_some_and(|kv| kv.key() == key.as_bytes()));
        responses.push(response);
        if done {
            return responses;
        }
    }
}

/// Events per watch id, in arrival order.
fn events_by_id(responses: &[WatchResponse]) -> BTreeMap<i64, Vec<Ev>> {
    let mut by_id: BTreeMap<i64, Vec<Ev>> = BTreeMap::new();
    for response in responses {
        by_id
            .entry(response.watch_id())
            .or_default()
            .extend(events_of(response));
    }
    by_id
}

async fn api_transcript(endpoint: &str) -> Vec<String> {
    let mut client = connect(endpoint).await;
    let mut log = Vec::new();

    // Cancel: a canceled response, then nothing more for that watcher.
    let (mut watcher, mut stream) = client.watch("c/k", None).await.expect("watch");
    let id = watcher.watch_id();
    log.push(format!("cancel: created id={id}"));
    let r1 = put(&mut client, "c/k", "1").await;
    let response = next_response(&mut stream).await;
    assert_eq!(response.watch_id(), id);
    assert_eq!(events_of(&response), vec![put_ev(r1, "c/k", "1", r1, 1)]);
    log.push(format!("cancel: {}", describe(&response)));
    watcher.cancel().await.expect("cancel");
    let response = next_response(&mut stream).await;
    assert!(
        response.canceled() && response.watch_id() == id && response.events().is_empty(),
        "cancel answer: {}",
        describe(&response)
    );
    log.push(format!("cancel: {}", describe(&response)));
    put(&mut client, "c/k", "2").await;
    watcher.watch("c/fence", None).await.expect("watch");
    let created = next_response(&mut stream).await;
    assert!(created.created(), "{}", describe(&created));
    log.push(format!("cancel: fence {}", describe(&created)));
    put(&mut client, "c/fence", "x").await;
    let response = next_response(&mut stream).await;
    assert_eq!(
        (response.watch_id(), events_of(&response).len()),
        (created.watch_id(), 1),
        "after the cancel, the next response is the fence's event: {}",
        describe(&response)
    );
    log.push(format!("cancel: fence {}", describe(&response)));
    // Canceling an unknown id gets no answer (the next response is the fence's again).
    watcher.cancel_by_id(99).await.expect("cancel unknown");
    put(&mut client, "c/fence", "y").await;
    let response = next_response(&mut stream).await;
    assert!(
        !response.canceled() && response.events().len() == 1,
        "{}",
        describe(&response)
    );
    log.push(format!(
        "cancel unknown id: next is {}",
        describe(&response)
    ));

    // Client-chosen ids, duplicates, auto ids that skip chosen ones, an empty range.
    let (mut watcher, mut stream) = client
        .watch("i/a", Some(WatchOptions::new().with_watch_id(7)))
        .await
        .expect("watch");
    assert_eq!(watcher.watch_id(), 7, "client-chosen watch id");
    log.push(format!("ids: created id={}", watcher.watch_id()));
    let requests: Vec<(&str, Option<WatchOptions>)> = vec![
        ("i/b", Some(WatchOptions::new().with_watch_id(7))),
        ("i/c", None),
        ("i/d", Some(WatchOptions::new().with_watch_id(1))),
        ("i/e", None),
        ("i/f", Some(WatchOptions::new().with_watch_id(2))),
        ("i/z", Some(WatchOptions::new().with_range("i/a"))),
    ];
    let mut ids = Vec::new();
    for (key, options) in requests {
        watcher.watch(key, options).await.expect("watch");
        let response = next_response(&mut stream).await;
        assert!(response.created(), "{}", describe(&response));
        log.push(format!("ids: {key}: {}", describe(&response)));
        ids.push((key, response));
    }
    let summary: Vec<(&str, i64, bool, &str)> = ids
        .iter()
        .map(|(key, response)| {
            (
                *key,
                response.watch_id(),
                response.canceled(),
                response.cancel_reason(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("i/b", -1, true, DUPLICATE_WATCH_ID),
            ("i/c", 0, false, ""),
            ("i/d", 1, false, ""),
            ("i/e", 2, false, ""),
            ("i/f", -1, true, DUPLICATE_WATCH_ID),
            ("i/z", -1, true, EMPTY_WATCH_RANGE),
        ],
        "created answers (key, watch_id, canceled, cancel_reason)"
    );
    for (key, want) in [
        ("i/a", Some(7)),
        ("i/b", None),
        ("i/c", Some(0)),
        ("i/d", Some(1)),
        ("i/e", Some(2)),
        ("i/f", None),
    ] {
        let revision = put(&mut client, key, "v").await;
        if let Some(want) = want {
            // Puts to keys nobody watches produce no response: the next response is this one.
            let response = next_response(&mut stream).await;
            assert_eq!(
                (response.watch_id(), events_of(&response)),
                (want, vec![put_ev(revision, key, "v", revision, 1)]),
                "the event for {key}"
            );
            log.push(format!("ids: {key}: {}", describe(&response)));
        }
    }

    // Filters and prev_kv.
    let (mut watcher, mut stream) = client
        .watch("f/k", Some(WatchOptions::new().with_prev_key()))
        .await
        .expect("watch");
    let options = [
        WatchOptions::new().with_filters([WatchFilterType::NoPut]),
        WatchOptions::new()
            .with_filters([WatchFilterType::NoDelete])
            .with_prev_key(),
        WatchOptions::new().with_filters([WatchFilterType::NoPut, WatchFilterType::NoDelete]),
    ];
    for option in options {
        watcher.watch("f/k", Some(option)).await.expect("watch");
        let response = next_response(&mut stream).await;
        assert!(response.created(), "{}", describe(&response));
    }
    watcher.watch("f/fence", None).await.expect("watch");
    let fence = next_response(&mut stream).await;
    assert_eq!(fence.watch_id(), 4);
    let p1 = put(&mut client, "f/k", "1").await;
    let p2 = put(&mut client, "f/k", "2").await;
    let d3 = client
        .delete("f/k", None)
        .await
        .expect("delete")
        .header()
        .expect("header")
        .revision();
    let p4 = put(&mut client, "f/k", "3").await;
    put(&mut client, "f/fence", "x").await;
    let responses = read_until_event(&mut stream, 4, "f/fence").await;
    let mut by_id = events_by_id(&responses);
    by_id.remove(&4);
    for (id, events) in &by_id {
        log.push(format!("filters: id={id} events={events:?}"));
    }
    let put1 = put_ev(p1, "f/k", "1", p1, 1);
    let put2 = put_ev(p2, "f/k", "2", p1, 2);
    let put3 = put_ev(p4, "f/k", "3", p4, 1);
    assert_eq!(
        by_id,
        BTreeMap::from([
            (
                0,
                vec![
                    put1.clone(),
                    with_prev(put2.clone(), "1", p1),
                    with_prev(del_ev(d3, "f/k"), "2", p2),
                    put3.clone()
                ]
            ),
            (1, vec![del_ev(d3, "f/k")]),
            (2, vec![put1, with_prev(put2, "1", p1), put3]),
        ]),
        "events per watcher: 0 prev_kv, 1 NOPUT, 2 NODELETE+prev_kv, 3 both filters"
    );

    // RequestProgress: watch_id -1 at the latest revision.
    let (mut watcher, mut stream) = client.watch("p/k", None).await.expect("watch");
    let revision = put(&mut client, "p/k", "v").await;
    let response = next_response(&mut stream).await;
    assert_eq!(events_of(&response).len(), 1);
    let latest = put(&mut client, "p/unwatched", "v").await;
    assert!(latest > revision);
    watcher.request_progress().await.expect("progress request");
    let response = next_response(&mut stream).await;
    assert!(
        is_progress(&response) && response.watch_id() == -1 && revision_of(&response) == latest,
        "progress answer at revision {latest}: {}",
        describe(&response)
    );
    log.push(format!("progress: {}", describe(&response)));

    // Many watches on one stream.
    let (mut watcher, mut stream) = client.watch("m/000", None).await.expect("watch");
    for index in 1..100 {
        watcher
            .watch(format!("m/{index:03}"), None)
            .await
            .expect("watch");
    }
    for index in 1..100 {
        let response = next_response(&mut stream).await;
        assert!(
            response.created() && response.watch_id() == index,
            "created #{index}: {}",
            describe(&response)
        );
    }
    let mut revisions = Vec::new();
    for index in 0..100 {
        revisions.push(put(&mut client, &format!("m/{index:03}"), &format!("v{index}")).await);
    }
    for (index, revision) in revisions.iter().enumerate() {
        let key = format!("m/{index:03}");
        let response = next_response(&mut stream).await;
        assert_eq!(
            (response.watch_id(), events_of(&response)),
            (
                index as i64,
                vec![put_ev(*revision, &key, &format!("v{index}"), *revision, 1)]
            ),
            "100 watches on one stream: event #{index}"
        );
    }
    log.push("100 watches on one stream: each got its own event".to_string());

    // Many streams on one connection (one client, one channel).
    let mut streams = Vec::new();
    for index in 0..50 {
        let (watcher, stream) = client
            .watch(format!("n/{index:02}"), None)
            .await
            .expect("watch");
        streams.push((watcher, stream));
    }
    let mut revisions = Vec::new();
    for index in 0..50 {
        revisions.push(put(&mut client, &format!("n/{index:02}"), "v").await);
    }
    for (index, (watcher, stream)) in streams.iter_mut().enumerate() {
        let key = format!("n/{index:02}");
        let response = next_response(stream).await;
        assert_eq!(
            (response.watch_id(), events_of(&response)),
            (
                watcher.watch_id(),
                vec![put_ev(revisions[index], &key, "v", revisions[index], 1)]
            ),
            "50 streams on one connection: stream #{index}"
        );
    }
    log.push("50 streams on one connection: each got its own event".to_string());
    log
}

#[test]
fn watch_api_matches_etcd_3_4() {
    let run = |flavor: Flavor| {
        let dir = tempfile::tempdir().expect("tempdir");
        let server = Server::start(flavor, dir.path(), &[]);
        tokio_runtime().block_on(api_transcript(&server.endpoint()))
    };
    let etcd = run(Flavor::Etcd);
    let capstan = run(Flavor::Capstan);
    assert_same_transcript(&capstan, &etcd, "watch API");
}

// ---------------------------------------------------------------------------------------------
// 2b. Fragments
// ---------------------------------------------------------------------------------------------

const FRAGMENT_MAX_REQUEST_BYTES: usize = 1024 * 1024;
/// etcd splits responses at `--max-request-bytes` plus gRPC's 512 KiB overhead allowance.
const FRAGMENT_LIMIT: usize = FRAGMENT_MAX_REQUEST_BYTES + 512 * 1024;
const FRAGMENT_VALUE_BYTES: usize = 200 * 1024;

fn big_value(tag: char, index: usize) -> String {
    let mut value = format!("{tag}{index}:");
    value.extend(std::iter::repeat_n(tag, FRAGMENT_VALUE_BYTES - value.len()));
    value
}

/// Responses (their events) up to the one with an event on `key`.
async fn collect_until_key(stream: &mut WatchStream, key: &str) -> Vec<Vec<Ev>> {
    let mut responses = Vec::new();
    loop {
        let response = next_response(stream).await;
        assert!(
            !response.canceled() && !response.created(),
            "{}",
            describe(&response)
        );
        let events = events_of(&response);
        let done = events.iter().any(|event| event.key == key);
        responses.push(events);
        if done {
            return responses;
        }
    }
}

/// (fragment flag, encoded size, events) of raw responses up to the one with `key`.
async fn collect_raw_until_key(watch: &mut RawWatch, key: &str) -> Vec<(bool, usize, Vec<Ev>)> {
    let mut responses = Vec::new();
    loop {
        let response = watch.next_within().await;
        assert!(!response.canceled && !response.created, "{response:?}");
        let events: Vec<Ev> = response.events.iter().map(pb_ev).collect();
        let done = events.iter().any(|event| event.key == key);
        responses.push((response.fragment, response.encoded_len(), events));
        if done {
            return responses;
        }
    }
}

/// Checks the fragment flags and sizes of raw responses; returns the reassembled responses.
fn reassemble(parts: &[(bool, usize, Vec<Ev>)], label: &str) -> Vec<Vec<Ev>> {
    let mut whole = Vec::new();
    let mut current: Vec<Ev> = Vec::new();
    for (index, (fragment, size, events)) in parts.iter().enumerate() {
        assert!(
            events.len() < 2 || *size < FRAGMENT_LIMIT,
            "{label}: part #{index} has {} events in {size} bytes, over the {FRAGMENT_LIMIT} limit",
            events.len()
        );
        current.extend(events.iter().cloned());
        if !fragment {
            whole.push(std::mem::take(&mut current));
        }
    }
    assert!(
        current.is_empty(),
        "{label}: the last part is marked as a fragment"
    );
    whole
}

/// Every revision's events are in one response.
fn assert_revision_atomic(responses: &[Vec<Ev>], label: &str) {
    let mut seen_in: HashMap<i64, usize> = HashMap::new();
    for (index, events) in responses.iter().enumerate() {
        for event in events {
            let first = *seen_in.entry(event.revision).or_insert(index);
            assert_eq!(
                first, index,
                "{label}: revision {} split over responses #{first} and #{index}",
                event.revision
            );
        }
    }
}

/// Revisions of each response (as sets).
fn revisions_per_response(responses: &[Vec<Ev>]) -> Vec<BTreeSet<i64>> {
    responses
        .iter()
        .map(|events| events.iter().map(|event| event.revision).collect())
        .collect()
}

async fn fragment_transcript(endpoint: &str) -> Vec<String> {
    let mut log = Vec::new();
    let mut client = connect(endpoint).await;
    let prefix = || WatchOptions::new().with_prefix().with_prev_key();
    let (_fragmented_watcher, mut fragmented) = client
        .watch("f/", Some(prefix().with_fragment()))
        .await
        .expect("watch");
    let (_whole_watcher, mut whole) = client.watch("f/", Some(prefix())).await.expect("watch");
    let raw_connection = raw_connect(endpoint).await;
    let mut raw = RawWatch::open(&raw_connection, endpoint).await;
    raw.create(WatchCreateRequest {
        prev_kv: true,
        fragment: true,
        ..create_request("f/", "f0")
    });
    assert!(raw.next_within().await.created);

    for index in 0..8 {
        put(&mut client, &format!("f/{index}"), &big_value('a', index)).await;
    }
    // One txn, five 200 KiB values (under --max-request-bytes); with prev_kv ~2 MB of events.
    let txn = Txn::new().and_then(
        (0..5)
            .map(|index| TxnOp::put(format!("f/{index}"), big_value('b', index), None))
            .collect::<Vec<_>>(),
    );
    let txn_revision = client
        .txn(txn)
        .await
        .expect("txn of five 200 KiB puts")
        .header()
        .expect("header")
        .revision();
    // One delete of eight keys; with prev_kv ~1.6 MB of events.
    let deleted = client
        .delete("f/", Some(DeleteOptions::new().with_prefix()))
        .await
        .expect("delete");
    assert_eq!(deleted.deleted(), 8);
    let delete_revision = deleted.header().expect("header").revision();
    put(&mut client, "f/end", "end").await;

    let whole_responses = collect_until_key(&mut whole, "f/end").await;
    let fragmented_responses = collect_until_key(&mut fragmented, "f/end").await;
    let raw_parts = collect_raw_until_key(&mut raw, "f/end").await;
    let all: Vec<Ev> = whole_responses.iter().flatten().cloned().collect();
    assert_eq!(all.len(), 8 + 5 + 8 + 1);
    // Without fragment: every revision in one response, however large (a watcher that fell
    // behind may get several revisions in one response).
    assert_revision_atomic(&whole_responses, "without fragment");
    // With fragment: the same events, the two big revisions split.
    let fragmented_all: Vec<Ev> = fragmented_responses.iter().flatten().cloned().collect();
    assert_eq!(fragmented_all, all, "fragments reassemble to every event");
    let parts_of = |responses: &[Vec<Ev>], revision: i64| {
        responses
            .iter()
            .filter(|events| events.iter().any(|event| event.revision == revision))
            .count()
    };
    let txn_parts = parts_of(&fragmented_responses, txn_revision);
    let delete_parts = parts_of(&fragmented_responses, delete_revision);
    assert!(
        txn_parts >= 2 && delete_parts >= 2,
        "large revisions arrive in fragments: txn in {txn_parts}, delete in {delete_parts}"
    );
    println!("live: txn revision in {txn_parts} fragments, delete revision in {delete_parts}");
    // The raw client sees the flags (it read nothing while the writes went on).
    let raw_whole = reassemble(&raw_parts, "live raw");
    assert_revision_atomic(&raw_whole, "raw, reassembled");
    let raw_all: Vec<Ev> = raw_whole.iter().flatten().cloned().collect();
    assert_eq!(raw_all, all, "raw fragments reassembled");
    log.push(format!("live events: {all:?}"));

    // History from revision 1 with fragment: one huge catch-up response, split.
    let mut history = RawWatch::open(&raw_connection, endpoint).await;
    history.create(WatchCreateRequest {
        prev_kv: true,
        fragment: true,
        start_revision: 1,
        ..create_request("f/", "f0")
    });
    assert!(history.next_within().await.created);
    let history_parts = collect_raw_until_key(&mut history, "f/end").await;
    let history_whole = reassemble(&history_parts, "history raw");
    let history_all: Vec<Ev> = history_whole.iter().flatten().cloned().collect();
    assert_eq!(
        history_all, all,
        "history reassembled equals the live events"
    );
    assert!(
        history_parts.len() > history_whole.len(),
        "history arrived in fragments"
    );
    println!(
        "history: {} responses in {} parts",
        history_whole.len(),
        history_parts.len()
    );
    log.push(format!(
        "history: revisions per reassembled response {:?}",
        revisions_per_response(&history_whole)
    ));
    log
}

#[test]
fn large_revisions_are_fragmented_like_etcd_3_4() {
    let max_request = format!("--max-request-bytes={FRAGMENT_MAX_REQUEST_BYTES}");
    let run = |flavor: Flavor| {
        let dir = tempfile::tempdir().expect("tempdir");
        let server = Server::start(flavor, dir.path(), &[&max_request]);
        tokio_runtime().block_on(fragment_transcript(&server.endpoint()))
    };
    let etcd = run(Flavor::Etcd);
    let capstan = run(Flavor::Capstan);
    assert_same_transcript(&capstan, &etcd, "fragments");
}

// ---------------------------------------------------------------------------------------------
// 2c. Periodic progress notifications
// ---------------------------------------------------------------------------------------------

async fn progress_notify_transcript(endpoint: &str) -> Vec<String> {
    let mut log = Vec::new();
    let mut client = connect(endpoint).await;
    let (mut watcher, mut stream) = client
        .watch("pn/k", Some(WatchOptions::new().with_progress_notify()))
        .await
        .expect("watch");
    let id = watcher.watch_id();
    watcher.watch("pn/quiet", None).await.expect("watch");
    let created = next_response(&mut stream).await;
    assert!(created.created());
    // Idle: a notification for the watcher that asked, at the current revision.
    let start = latest_revision(&mut client).await;
    let response = next_response(&mut stream).await;
    assert!(
        is_progress(&response) && response.watch_id() == id && revision_of(&response) == start,
        "an idle watcher's progress notification at {start}: {}",
        describe(&response)
    );
    log.push(format!("idle: {}", describe(&response)));
    // An event, then progress at a later revision written elsewhere.
    let revision = put(&mut client, "pn/k", "v").await;
    let mut event = None;
    while event.is_none() {
        let response = next_response(&mut stream).await;
        if is_progress(&response) {
            assert!(
                response.watch_id() == id && revision_of(&response) <= revision,
                "{}",
                describe(&response)
            );
        } else {
            event = Some(response);
        }
    }
    let event = event.expect("event");
    assert_eq!(
        (event.watch_id(), events_of(&event)),
        (id, vec![put_ev(revision, "pn/k", "v", revision, 1)])
    );
    log.push(format!("event: {}", describe(&event)));
    let latest = put(&mut client, "pn/unwatched", "v").await;
    loop {
        let response = next_response(&mut stream).await;
        assert!(
            is_progress(&response) && response.watch_id() == id && revision_of(&response) <= latest,
            "only progress notifications for watcher {id} while idle: {}",
            describe(&response)
        );
        if revision_of(&response) == latest {
            log.push(format!("idle again: {}", describe(&response)));
            break;
        }
    }
    log
}

#[test]
fn periodic_progress_notifications_like_etcd_3_4() {
    let run = |flavor: Flavor, flag: &str| {
        let dir = tempfile::tempdir().expect("tempdir");
        let server = Server::start(flavor, dir.path(), &[flag]);
        tokio_runtime().block_on(progress_notify_transcript(&server.endpoint()))
    };
    let etcd = run(
        Flavor::Etcd,
        "--experimental-watch-progress-notify-interval=1s",
    );
    let capstan = run(Flavor::Capstan, "--watch-progress-notify-interval=1s");
    assert_same_transcript(&capstan, &etcd, "progress notifications");
}

// ---------------------------------------------------------------------------------------------
// 5. A watch below the compaction revision is cancelled with compact_revision
// ---------------------------------------------------------------------------------------------

/// The header revision of a compaction cancel is left out of the transcript: etcd 3.4 sends 0
/// there (the mvcc response carries no revision), Capstan the current revision.
async fn compaction_transcript(endpoint: &str) -> Vec<String> {
    let mut log = Vec::new();
    let mut client = connect(endpoint).await;
    let mut revisions = Vec::new();
    for index in 0..5 {
        revisions.push(put(&mut client, "cp/k", &format!("v{index}")).await);
    }
    let compacted = revisions[3];
    client.compact(compacted, None).await.expect("compact");
    log.push(format!("compacted at {compacted}"));

    let (mut watcher, mut stream) = client
        .watch(
            "cp/k",
            Some(WatchOptions::new().with_start_revision(revisions[1])),
        )
        .await
        .expect("watch");
    let response = next_response(&mut stream).await;
    assert!(
        response.canceled()
            && response.watch_id() == watcher.watch_id()
            && response.compact_revision() == compacted
            && response.events().is_empty(),
        "a watch from {} after compaction at {compacted}: {}",
        revisions[1],
        describe(&response)
    );
    log.push(format!(
        "from {}: id={} canceled={} compact_revision={} events={}",
        revisions[1],
        response.watch_id(),
        response.canceled(),
        response.compact_revision(),
        response.events().len()
    ));
    // On the same stream: exactly at the compaction revision works; below it does not.
    for (start, options) in [
        (
            revisions[2],
            WatchOptions::new().with_start_revision(revisions[2]),
        ),
        (1, WatchOptions::new().with_prefix().with_start_revision(1)),
        (
            compacted,
            WatchOptions::new().with_start_revision(compacted),
        ),
    ] {
        watcher.watch("cp/k", Some(options)).await.expect("watch");
        let created = next_response(&mut stream).await;
        assert!(
            created.created() && !created.canceled(),
            "{}",
            describe(&created)
        );
        let response = next_response(&mut stream).await;
        assert_eq!(response.watch_id(), created.watch_id());
        if start < compacted {
            assert!(
                response.canceled() && response.compact_revision() == compacted,
                "a watch from {start} after compaction at {compacted}: {}",
                describe(&response)
            );
        } else {
            assert!(!response.canceled(), "{}", describe(&response));
            let events = events_of(&response);
            assert_eq!(
                events
                    .iter()
                    .map(|event| event.revision)
                    .collect::<Vec<_>>(),
                vec![revisions[3], revisions[4]],
                "history from the compaction revision"
            );
        }
        log.push(format!(
            "from {start}: created id={}; then id={} canceled={} compact_revision={} events={:?}",
            created.watch_id(),
            response.watch_id(),
            response.canceled(),
            response.compact_revision(),
            events_of(&response)
        ));
    }
    log
}

/// A watcher cancelled by compaction, with a client-chosen id: etcd keeps the id registered
/// until the client cancels it (the cancel is answered) and refuses to reuse it before that.
async fn compacted_watch_id_transcript(endpoint: &str) -> Vec<String> {
    let mut log = Vec::new();
    let mut client = connect(endpoint).await;
    let mut revisions = Vec::new();
    for index in 0..5 {
        revisions.push(put(&mut client, "cp/k", &format!("v{index}")).await);
    }
    client.compact(revisions[3], None).await.expect("compact");
    let (mut watcher, mut stream) = client.watch("cp/other", None).await.expect("watch");
    // A client-chosen id cancelled by compaction: cancelling it, then reusing it.
    watcher
        .watch(
            "cp/k",
            Some(
                WatchOptions::new()
                    .with_watch_id(5)
                    .with_start_revision(revisions[1]),
            ),
        )
        .await
        .expect("watch");
    for _ in 0..2 {
        let response = next_response(&mut stream).await;
        log.push(format!(
            "explicit id 5 from {}: {}",
            revisions[1],
            describe_without_header(&response)
        ));
    }
    watcher.cancel_by_id(5).await.expect("cancel");
    watcher
        .watch("cp/k", Some(WatchOptions::new().with_watch_id(6)))
        .await
        .expect("watch");
    let response = next_response(&mut stream).await;
    log.push(format!(
        "cancel 5, create 6: {}",
        describe_without_header(&response)
    ));
    if !response.created() {
        let response = next_response(&mut stream).await;
        log.push(format!(
            "cancel 5, create 6: {}",
            describe_without_header(&response)
        ));
    }
    watcher
        .watch("cp/k", Some(WatchOptions::new().with_watch_id(5)))
        .await
        .expect("watch");
    let response = next_response(&mut stream).await;
    log.push(format!(
        "create 5 again: {}",
        describe_without_header(&response)
    ));
    // Reusing the id while the compacted watcher is still registered (etcd: a duplicate).
    watcher
        .watch(
            "cp/k",
            Some(
                WatchOptions::new()
                    .with_watch_id(8)
                    .with_start_revision(revisions[1]),
            ),
        )
        .await
        .expect("watch");
    for _ in 0..2 {
        let response = next_response(&mut stream).await;
        log.push(format!(
            "explicit id 8 from {}: {}",
            revisions[1],
            describe_without_header(&response)
        ));
    }
    watcher
        .watch("cp/k", Some(WatchOptions::new().with_watch_id(8)))
        .await
        .expect("watch");
    let response = next_response(&mut stream).await;
    log.push(format!(
        "create 8 again without cancelling: {}",
        describe_without_header(&response)
    ));
    log
}

#[test]
fn compaction_canceled_watch_id_stays_registered_like_etcd_3_4() {
    let run = |flavor: Flavor| {
        let dir = tempfile::tempdir().expect("tempdir");
        let server = Server::start(flavor, dir.path(), &[]);
        tokio_runtime().block_on(compacted_watch_id_transcript(&server.endpoint()))
    };
    let etcd = run(Flavor::Etcd);
    let capstan = run(Flavor::Capstan);
    assert_same_transcript(&capstan, &etcd, "ids of compaction-canceled watchers");
}

fn describe_without_header(response: &WatchResponse) -> String {
    let line = describe(response);
    match line.split_once(" rev=") {
        Some((id, rest)) => format!(
            "{id}{}",
            rest.split_once(' ')
                .map_or(String::new(), |(_, tail)| format!(" {tail}"))
        ),
        None => line,
    }
}

#[test]
fn watch_below_compaction_is_canceled_like_etcd_3_4() {
    let run = |flavor: Flavor| {
        let dir = tempfile::tempdir().expect("tempdir");
        let server = Server::start(flavor, dir.path(), &[]);
        tokio_runtime().block_on(compaction_transcript(&server.endpoint()))
    };
    let etcd = run(Flavor::Etcd);
    let capstan = run(Flavor::Capstan);
    assert_same_transcript(&capstan, &etcd, "compaction");
}

// ---------------------------------------------------------------------------------------------
// 3. Guarantees: ~1000 watchers on both shards, 4 concurrent writers, then a restart
// ---------------------------------------------------------------------------------------------

const GROUPS: [&str; 4] = ["a", "b", "c", "d"];

/// Shards named by the server's accepted-connection log lines.
fn group_key(group: usize, number: usize) -> String {
    format!("g/{}/{number:02}", GROUPS[group])
}

fn random_key(rng: &mut StdRng) -> String {
    group_key(rng.gen_range(0..GROUPS.len()), rng.gen_range(0..32))
}

#[derive(Clone, Debug)]
enum Op {
    Put { key: String, value: String },
    Delete { key: String, end: Option<String> },
}

impl Op {
    fn txn_op(&self) -> TxnOp {
        match self {
            Op::Put { key, value } => TxnOp::put(key.as_str(), value.as_str(), None),
            Op::Delete { key, end } => TxnOp::delete(
                key.as_str(),
                end.as_ref()
                    .map(|end| DeleteOptions::new().with_range(end.as_str())),
            ),
        }
    }

    fn deletes(&self, key: &str) -> bool {
        match self {
            Op::Put { .. } => false,
            Op::Delete { key: start, end } => match end {
                None => key == start,
                Some(end) => key >= start.as_str() && key < end.as_str(),
            },
        }
    }
}

/// What a writer was told: the response revision and each op with its deleted count.
#[derive(Debug)]
struct Ack {
    revision: i64,
    changed: bool,
    ops: Vec<(Op, i64)>,
}

/// `ops` random puts, deletes, range deletes and txns on `g/`, one at a time.
async fn run_writer(
    endpoint: String,
    writer: usize,
    ops: usize,
    seed: u64,
    latest: Arc<AtomicI64>,
) -> Vec<Ack> {
    let mut client = connect(&endpoint).await;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut acks = Vec::with_capacity(ops);
    for index in 0..ops {
        let roll = rng.gen_range(0..100);
        let ack = if roll < 45 {
            let key = random_key(&mut rng);
            let value = format!("w{writer}-{index}");
            let response = client
                .put(key.as_str(), value.as_str(), None)
                .await
                .expect("put");
            Ack {
                revision: response.header().expect("header").revision(),
                changed: true,
                ops: vec![(Op::Put { key, value }, 0)],
            }
        } else if roll < 70 {
            let group = rng.gen_range(0..GROUPS.len());
            let number = rng.gen_range(0..32);
            let key = group_key(group, number);
            let end = (roll >= 60).then(|| group_key(group, number + rng.gen_range(1..6)));
            let options = end
                .as_ref()
                .map(|end| DeleteOptions::new().with_range(end.as_str()));
            let response = client.delete(key.as_str(), options).await.expect("delete");
            Ack {
                revision: response.header().expect("header").revision(),
                changed: response.deleted() > 0,
                ops: vec![(Op::Delete { key, end }, response.deleted())],
            }
        } else {
            // Distinct keys, in random (not key) order.
            let count = rng.gen_range(2..=4);
            let mut keys: Vec<String> = Vec::new();
            while keys.len() < count {
                let key = random_key(&mut rng);
                if !keys.contains(&key) {
                    keys.push(key);
                }
            }
            let then_ops: Vec<Op> = keys
                .into_iter()
                .enumerate()
                .map(|(position, key)| {
                    if rng.gen_bool(0.7) {
                        Op::Put {
                            key,
                            value: format!("w{writer}-{index}-{position}"),
                        }
                    } else {
                        Op::Delete { key, end: None }
                    }
                })
                .collect();
            let else_ops = vec![Op::Put {
                key: random_key(&mut rng),
                value: format!("w{writer}-{index}-else"),
            }];
            let txn = Txn::new()
                .when([Compare::version(
                    random_key(&mut rng),
                    CompareOp::Greater,
                    0,
                )])
                .and_then(then_ops.iter().map(Op::txn_op).collect::<Vec<_>>())
                .or_else(else_ops.iter().map(Op::txn_op).collect::<Vec<_>>());
            let response = client.txn(txn).await.expect("txn");
            let chosen = if response.succeeded() {
                then_ops
            } else {
                else_ops
            };
            let results = response.op_responses();
            assert_eq!(results.len(), chosen.len(), "one result per txn op");
            let ops: Vec<(Op, i64)> = chosen
                .into_iter()
                .zip(results)
                .map(|(op, result)| match result {
                    TxnOpResponse::Delete(delete) => (op, delete.deleted()),
                    _ => (op, 0),
                })
                .collect();
            Ack {
                revision: response.header().expect("header").revision(),
                changed: ops
                    .iter()
                    .any(|(op, deleted)| matches!(op, Op::Put { .. }) || *deleted > 0),
                ops,
            }
        };
        latest.fetch_max(ack.revision, Ordering::SeqCst);
        acks.push(ack);
    }
    acks
}

/// Checks the checker watcher's events against what the writers were told, for revisions in
/// `after+1..=upto`: exactly the changing writes' revisions, each with its puts and deletes.
fn cross_check(events: &[Ev], acks: &[Ack], after: i64, upto: i64, label: &str) {
    let mut by_revision: BTreeMap<i64, Vec<&Ev>> = BTreeMap::new();
    for event in events {
        if event.revision > after && event.revision <= upto {
            by_revision.entry(event.revision).or_default().push(event);
        }
    }
    let mut acked: BTreeMap<i64, &Ack> = BTreeMap::new();
    for ack in acks.iter().filter(|ack| ack.changed) {
        assert!(
            acked.insert(ack.revision, ack).is_none(),
            "{label}: two changing writes acknowledged with revision {}",
            ack.revision
        );
    }
    let watched: Vec<i64> = by_revision.keys().copied().collect();
    let written: Vec<i64> = acked.keys().copied().collect();
    assert_eq!(
        watched, written,
        "{label}: revisions seen by the checker watcher vs. revisions of acknowledged writes"
    );
    assert_eq!(
        written,
        ((after + 1)..=upto).collect::<Vec<_>>(),
        "{label}: every revision is one acknowledged write"
    );
    for (revision, ack) in acked {
        let events = &by_revision[&revision];
        let mut puts_seen: Vec<(&str, &str)> = events
            .iter()
            .filter(|event| !event.delete)
            .map(|event| (event.key.as_str(), event.value.as_str()))
            .collect();
        let mut puts_done: Vec<(&str, &str)> = ack
            .ops
            .iter()
            .filter_map(|(op, _)| match op {
                Op::Put { key, value } => Some((key.as_str(), value.as_str())),
                Op::Delete { .. } => None,
            })
            .collect();
        puts_seen.sort();
        puts_done.sort();
        assert_eq!(puts_seen, puts_done, "{label}: puts at revision {revision}");
        let mut deletes_total = 0;
        for (op, deleted) in &ack.ops {
            if let Op::Delete { .. } = op {
                let seen = events
                    .iter()
                    .filter(|event| event.delete && op.deletes(&event.key))
                    .count() as i64;
                assert_eq!(
                    seen, *deleted,
                    "{label}: delete events at revision {revision} for {op:?}"
                );
                deletes_total += deleted;
            }
        }
        assert_eq!(
            events.iter().filter(|event| event.delete).count() as i64,
            deletes_total,
            "{label}: delete events at revision {revision}"
        );
    }
}

#[derive(Clone, Debug)]
enum End {
    Single,
    Prefix,
    Range(String),
    FromKey,
}

/// One watcher's request; `start` is `None` for "now".
#[derive(Clone, Debug)]
struct Spec {
    key: String,
    end: End,
    start: Option<i64>,
    no_put: bool,
    no_delete: bool,
    prev_kv: bool,
}

impl Spec {
    fn options(&self) -> WatchOptions {
        let mut options = WatchOptions::new();
        match &self.end {
            End::Single => {}
            End::Prefix => options = options.with_prefix(),
            End::Range(end) => options = options.with_range(end.as_str()),
            End::FromKey => options = options.with_from_key(),
        }
        if let Some(start) = self.start {
            options = options.with_start_revision(start);
        }
        let mut filters = Vec::new();
        if self.no_put {
            filters.push(WatchFilterType::NoPut);
        }
        if self.no_delete {
            filters.push(WatchFilterType::NoDelete);
        }
        if !filters.is_empty() {
            options = options.with_filters(filters);
        }
        if self.prev_kv {
            options = options.with_prev_key();
        }
        options
    }

    fn covers(&self, key: &str) -> bool {
        match &self.end {
            End::Single => key == self.key,
            End::Prefix => key.starts_with(&self.key),
            End::Range(end) => key >= self.key.as_str() && key < end.as_str(),
            End::FromKey => key >= self.key.as_str(),
        }
    }

    /// The event as this watcher must see it, if at all.
    fn shape(&self, event: &Ev) -> Option<Ev> {
        if !self.covers(&event.key)
            || (event.delete && self.no_delete)
            || (!event.delete && self.no_put)
        {
            return None;
        }
        let mut shaped = event.clone();
        if !self.prev_kv {
            shaped.prev = None;
        }
        Some(shaped)
    }
}

/// When a watcher is created and from where it starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Plan {
    /// Before the writers, from now.
    EarlyLive,
    /// Before the writers, from a revision the writers reach later.
    EarlyFuture,
    /// While the writers run: from revision 1, from halfway, from now.
    MidHistory,
    MidMiddle,
    MidLive,
}

fn random_spec(rng: &mut StdRng) -> (Spec, Plan) {
    let roll = rng.gen_range(0..100);
    let (key, end) = if roll < 40 {
        let key = if rng.gen_range(0..20) == 0 {
            "g/a/99".to_string()
        } else {
            random_key(rng)
        };
        (key, End::Single)
    } else if roll < 65 {
        let mut first = random_key(rng);
        let mut second = random_key(rng);
        while second == first {
            second = random_key(rng);
        }
        if second < first {
            std::mem::swap(&mut first, &mut second);
        }
        (first, End::Range(second))
    } else if roll < 85 {
        let prefixes = ["g/a/", "g/b/", "g/c/", "g/d/", "g/a/1", "g/c/2", "g/b/0"];
        (
            prefixes[rng.gen_range(0..prefixes.len())].to_string(),
            End::Prefix,
        )
    } else if roll < 92 {
        ("g/".to_string(), End::Prefix)
    } else {
        (random_key(rng), End::FromKey)
    };
    let filter = rng.gen_range(0..10);
    let spec = Spec {
        key,
        end,
        start: None,
        no_put: filter == 0,
        no_delete: filter == 1,
        prev_kv: rng.gen_bool(0.3),
    };
    let plan = match rng.gen_range(0..10) {
        0..=2 => Plan::EarlyLive,
        3 => Plan::EarlyFuture,
        4 | 5 => Plan::MidHistory,
        6 | 7 => Plan::MidMiddle,
        _ => Plan::MidLive,
    };
    (spec, plan)
}

/// One Watch stream: its request handle, every response in arrival order (read by a task),
/// and the watchers created on it (in request order; the first, a dummy, is not listed).
struct StreamRecord {
    watcher: Watcher,
    responses: Arc<Mutex<Vec<WatchResponse>>>,
    failure: Arc<Mutex<Option<String>>>,
    created: Vec<(usize, Spec)>,
}

impl StreamRecord {
    /// Opens a stream with a dummy watcher (etcd-client keeps the first created response to
    /// itself, and the tests need every created response of real watchers).
    async fn open(client: &mut Client, dummy: &str) -> StreamRecord {
        let (watcher, mut stream) = client.watch(dummy, None).await.expect("watch");
        let responses = Arc::new(Mutex::new(Vec::new()));
        let failure = Arc::new(Mutex::new(None));
        let (sink, failed) = (responses.clone(), failure.clone());
        tokio::spawn(async move {
            loop {
                match stream.message().await {
                    Ok(Some(response)) => sink.lock().expect("lock").push(response),
                    Ok(None) => {
                        *failed.lock().expect("lock") = Some("stream ended".to_string());
                        return;
                    }
                    Err(error) => {
                        *failed.lock().expect("lock") = Some(error.to_string());
                        return;
                    }
                }
            }
        });
        StreamRecord {
            watcher,
            responses,
            failure,
            created: Vec::new(),
        }
    }

    async fn create(&mut self, label: usize, spec: Spec) {
        self.watcher
            .watch(spec.key.as_str(), Some(spec.options()))
            .await
            .expect("watch request");
        self.created.push((label, spec));
    }

    fn synced_at(&self, revision: i64) -> bool {
        self.responses
            .lock()
            .expect("lock")
            .iter()
            .any(|r| r.watch_id() == -1 && is_progress(r) && revision_of(r) >= revision)
    }
}

/// Waits until every stream answered a progress request at `revision` or later: with every
/// watcher of the stream on the live path, all events up to it were sent before that answer.
async fn wait_synced(streams: &mut [StreamRecord], revision: i64, label: &str) {
    let deadline = Instant::now() + PHASE_TIMEOUT;
    loop {
        let pending: Vec<usize> = (0..streams.len())
            .filter(|&index| !streams[index].synced_at(revision))
            .collect();
        if pending.is_empty() {
            return;
        }
        for &index in &pending {
            if let Some(failure) = streams[index].failure.lock().expect("lock").clone() {
                panic!("{label}: stream #{index} failed: {failure}");
            }
        }
        assert!(
            Instant::now() < deadline,
            "{label}: streams {pending:?} did not report progress at revision {revision} \
             within {PHASE_TIMEOUT:?}"
        );
        for &index in &pending {
            streams[index]
                .watcher
                .request_progress()
                .await
                .expect("progress request");
        }
        let until = Instant::now() + Duration::from_secs(1);
        while Instant::now() < until && pending.iter().any(|&i| !streams[i].synced_at(revision)) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// What one watcher got: its created response's revision, its event responses, and anything
/// unexpected.
#[derive(Default)]
struct Outcome {
    created_revision: Option<i64>,
    responses: Vec<Vec<Ev>>,
    anomalies: Vec<String>,
}

/// Splits a stream's responses per created watcher (created responses come in request order).
fn split_stream(record: &StreamRecord) -> Vec<Outcome> {
    let responses = record.responses.lock().expect("lock");
    let mut outcomes: Vec<Outcome> = record.created.iter().map(|_| Outcome::default()).collect();
    let dummy = record.watcher.watch_id();
    let mut by_id: HashMap<i64, usize> = HashMap::new();
    let mut next_created = 0;
    for response in responses.iter() {
        if response.created() {
            assert!(
                next_created < outcomes.len(),
                "more created responses than create requests: {}",
                describe(response)
            );
            let outcome = &mut outcomes[next_created];
            outcome.created_revision = Some(revision_of(response));
            if response.canceled() {
                outcome
                    .anomalies
                    .push(format!("refused: {}", describe(response)));
            } else {
                assert!(
                    by_id.insert(response.watch_id(), next_created).is_none(),
                    "watch id {} given twice on one stream",
                    response.watch_id()
                );
            }
            next_created += 1;
            continue;
        }
        if response.watch_id() == -1 && is_progress(response) {
            continue;
        }
        let Some(&index) = by_id.get(&response.watch_id()) else {
            let owner = if response.watch_id() == dummy {
                "the dummy watcher"
            } else {
                "an unknown watch id"
            };
            panic!("a response for {owner}: {}", describe(response));
        };
        if response.canceled() || response.events().is_empty() {
            outcomes[index]
                .anomalies
                .push(format!("unexpected response: {}", describe(response)));
        } else {
            outcomes[index].responses.push(events_of(response));
        }
    }
    outcomes
}

/// How `got` differs from `expected`.
fn difference(expected: &[Ev], got: &[Ev]) -> String {
    let at = expected
        .iter()
        .zip(got)
        .position(|(want, have)| want != have)
        .unwrap_or(expected.len().min(got.len()));
    let mut kinds = Vec::new();
    if got
        .windows(2)
        .any(|pair| pair[1].revision < pair[0].revision)
    {
        kinds.push("out of revision order");
    }
    let mut unique = got.to_vec();
    unique.dedup();
    if unique.len() < got.len() || {
        let mut seen = BTreeSet::new();
        got.iter()
            .any(|event| !seen.insert((event.revision, event.key.clone())))
    } {
        kinds.push("duplicates");
    }
    if expected.iter().any(|event| !got.contains(event)) {
        kinds.push("missing events");
    }
    if got.iter().any(|event| !expected.contains(event)) {
        kinds.push("unexpected events");
    }
    format!(
        "{kinds:?}: {} events expected, {} received; first difference at #{at}: expected {:?}, \
         received {:?}",
        expected.len(),
        got.len(),
        expected.get(at),
        got.get(at)
    )
}

/// Checks one watcher against the checker's full event list; returns what is wrong.
fn check_watcher(label: &str, spec: &Spec, outcome: &Outcome, all: &[Ev]) -> Vec<String> {
    let mut problems: Vec<String> = outcome
        .anomalies
        .iter()
        .map(|anomaly| format!("{label} {spec:?}: {anomaly}"))
        .collect();
    let Some(created_revision) = outcome.created_revision else {
        problems.push(format!("{label} {spec:?}: no created response"));
        return problems;
    };
    let start = spec.start.unwrap_or(created_revision + 1);
    let expected: Vec<Ev> = all
        .iter()
        .filter(|event| event.revision >= start)
        .filter_map(|event| spec.shape(event))
        .collect();
    let got: Vec<Ev> = outcome.responses.iter().flatten().cloned().collect();
    if got != expected {
        problems.push(format!(
            "{label} {spec:?} from revision {start}: {}",
            difference(&expected, &got)
        ));
    }
    let mut seen_in: HashMap<i64, usize> = HashMap::new();
    for (index, events) in outcome.responses.iter().enumerate() {
        for event in events {
            let first = *seen_in.entry(event.revision).or_insert(index);
            if first != index {
                problems.push(format!(
                    "{label} {spec:?}: revision {} split over responses #{first} and #{index}",
                    event.revision
                ));
            }
        }
    }
    problems
}

fn assert_no_problems(problems: &[String], watchers: usize, label: &str) {
    assert!(
        problems.is_empty(),
        "{label}: {} problems over {watchers} watchers; the first ones:\n{}",
        problems.len(),
        problems
            .iter()
            .take(15)
            .map(|problem| format!("  {problem}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// The checker: every key from revision 1, with prev_kv.
fn checker_spec() -> Spec {
    Spec {
        key: "\0".to_string(),
        end: End::FromKey,
        start: Some(1),
        no_put: false,
        no_delete: false,
        prev_kv: true,
    }
}

/// The checker's events, checked for atomicity and strictly increasing revisions.
fn checker_events(record: &StreamRecord, label: &str) -> Vec<Ev> {
    let outcomes = split_stream(record);
    let outcome = &outcomes[0];
    assert!(
        outcome.anomalies.is_empty(),
        "{label}: {:?}",
        outcome.anomalies
    );
    assert_revision_atomic(&outcome.responses, label);
    let all: Vec<Ev> = outcome.responses.iter().flatten().cloned().collect();
    assert!(
        all.windows(2)
            .all(|pair| pair[0].revision <= pair[1].revision),
        "{label}: events out of revision order"
    );
    all
}

const WATCHERS: usize = 1000;
const STREAMS: usize = 20;
const WRITERS: usize = 4;
const OPS_PER_WRITER: usize = 500;

#[test]
fn ordered_gap_free_atomic_events_for_1000_watchers_and_after_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = start_logging_connections(dir.path(), &["--shards=2"]);
    let runtime = tokio_runtime();
    let started = Instant::now();
    let mut rng = StdRng::seed_from_u64(0x3a7c);
    let plans: Vec<(Spec, Plan)> = (0..WATCHERS).map(|_| random_spec(&mut rng)).collect();

    // Phase 1: watchers created before and during the writes.
    let (final_revision, all_events, received) = runtime.block_on(async {
        let endpoint = server.endpoint();
        let mut clients = Vec::new();
        while clients.len() < 10 || (shards_seen(&server).len() < 2 && clients.len() < 40) {
            let mut client = connect(&endpoint).await;
            client.get("warm-up", None).await.expect("get");
            clients.push(client);
        }
        assert_eq!(
            shards_seen(&server).len(),
            2,
            "{} connections all landed on one shard",
            clients.len()
        );
        let stream_count = clients.len().max(STREAMS);
        let mut checker_client = connect(&endpoint).await;
        let mut checker = StreamRecord::open(&mut checker_client, "dummy/checker").await;
        checker.create(usize::MAX, checker_spec()).await;
        let mut streams = Vec::new();
        for index in 0..stream_count {
            let connections = clients.len();
            let client = &mut clients[index % connections];
            streams.push(StreamRecord::open(client, &format!("dummy/{index}")).await);
        }
        let base = latest_revision(&mut clients[0]).await;
        let total_ops = (WRITERS * OPS_PER_WRITER) as i64;
        for (label, (spec, plan)) in plans.iter().enumerate() {
            let start = match plan {
                Plan::EarlyLive => None,
                Plan::EarlyFuture => Some(base + 1 + (label as i64 * 7) % total_ops),
                _ => continue,
            };
            let spec = Spec {
                start,
                ..spec.clone()
            };
            streams[label % stream_count].create(label, spec).await;
        }
        let latest = Arc::new(AtomicI64::new(base));
        let writers: Vec<_> = (0..WRITERS)
            .map(|writer| {
                tokio::spawn(run_writer(
                    endpoint.clone(),
                    writer,
                    OPS_PER_WRITER,
                    1000 + writer as u64,
                    latest.clone(),
                ))
            })
            .collect();
        // The others once a third of the writes are acknowledged (or the writers are done).
        while latest.load(Ordering::SeqCst) < base + total_ops / 3
            && !writers.iter().all(|writer| writer.is_finished())
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let middle = (latest.load(Ordering::SeqCst) / 2).max(1);
        for (label, (spec, plan)) in plans.iter().enumerate() {
            let start = match plan {
                Plan::MidHistory => Some(1),
                Plan::MidMiddle => Some(middle),
                Plan::MidLive => None,
                _ => continue,
            };
            let spec = Spec {
                start,
                ..spec.clone()
            };
            streams[label % stream_count].create(label, spec).await;
        }
        let mut acks = Vec::new();
        for writer in writers {
            acks.extend(writer.await.expect("writer task"));
        }
        let final_revision = acks.iter().map(|ack| ack.revision).max().unwrap_or(base);
        println!(
            "{} writes up to revision {final_revision} in {:?}; {} watchers on {stream_count} \
             streams over {} connections",
            acks.len(),
            started.elapsed(),
            WATCHERS,
            clients.len()
        );
        streams.push(checker);
        wait_synced(&mut streams, final_revision, "before the restart").await;
        let checker = streams.pop().expect("checker");
        println!("all watchers synced after {:?}", started.elapsed());

        let all = checker_events(&checker, "checker");
        cross_check(&all, &acks, base, final_revision, "before the restart");
        let mut problems = Vec::new();
        let mut received: Vec<(Spec, Vec<Ev>)> = vec![(checker_spec(), Vec::new()); WATCHERS];
        let mut events_delivered = 0;
        for stream in &streams {
            for ((label, spec), outcome) in stream.created.iter().zip(split_stream(stream)) {
                problems.extend(check_watcher(
                    &format!("watcher #{label}"),
                    spec,
                    &outcome,
                    &all,
                ));
                let events: Vec<Ev> = outcome.responses.into_iter().flatten().collect();
                events_delivered += events.len();
                received[*label] = (spec.clone(), events);
            }
        }
        println!("{events_delivered} events delivered to {WATCHERS} watchers");
        assert_no_problems(&problems, WATCHERS, "before the restart");
        (final_revision, all, received)
    });

    // Phase 2: restart; watchers resume from their last (or a middle) revision + 1 while more
    // writes go on.
    server.restart();
    runtime.block_on(async {
        let endpoint = server.endpoint();
        let mut clients = [connect(&endpoint).await, connect(&endpoint).await];
        let mut checker = StreamRecord::open(&mut clients[0], "dummy/checker").await;
        checker.create(usize::MAX, checker_spec()).await;
        let mut streams = Vec::new();
        for index in 0..4 {
            streams
                .push(StreamRecord::open(&mut clients[index % 2], &format!("dummy/{index}")).await);
        }
        let mut resumed = 0;
        for (label, (spec, events)) in received.iter().enumerate().step_by(10) {
            let cut = match events.len() {
                0 => final_revision,
                length if label % 20 == 0 => events[length - 1].revision,
                length => events[length / 2].revision,
            };
            let spec = Spec {
                start: Some(cut + 1),
                ..spec.clone()
            };
            streams[resumed % 4].create(label, spec).await;
            resumed += 1;
        }
        let latest = Arc::new(AtomicI64::new(final_revision));
        let acks = run_writer(endpoint.clone(), 9, 200, 77, latest).await;
        let after = acks
            .iter()
            .map(|ack| ack.revision)
            .max()
            .unwrap_or(final_revision);
        streams.push(checker);
        wait_synced(&mut streams, after, "after the restart").await;
        let checker = streams.pop().expect("checker");
        let all = checker_events(&checker, "checker after the restart");
        let before: Vec<Ev> = all
            .iter()
            .filter(|event| event.revision <= final_revision)
            .cloned()
            .collect();
        assert!(
            before == all_events,
            "history up to revision {final_revision} after the restart: {}",
            difference(&all_events, &before)
        );
        cross_check(&all, &acks, final_revision, after, "after the restart");
        let mut problems = Vec::new();
        for stream in &streams {
            for ((label, spec), outcome) in stream.created.iter().zip(split_stream(stream)) {
                problems.extend(check_watcher(
                    &format!("resumed watcher #{label}"),
                    spec,
                    &outcome,
                    &all,
                ));
            }
        }
        assert_no_problems(&problems, resumed, "after the restart");
        println!(
            "{resumed} watchers resumed after the restart, {} more writes up to revision \
             {after}; total {:?}",
            acks.len(),
            started.elapsed()
        );
    });
}

// ---------------------------------------------------------------------------------------------
// 4. Stalled readers
// ---------------------------------------------------------------------------------------------

const STALLED_CONNECTIONS: usize = 4;
const STALLED_STREAMS_PER_CONNECTION: usize = 4;
const STALL_WRITERS: usize = 4;
const STALL_PUTS_PER_WRITER: usize = 500;
const STALL_VALUE_BYTES: usize = 10 * 1024;
/// Puts made while the stalled watchers catch up (catch-up variant).
const STALL_EXTRA_PUTS: usize = 500;
/// Generous bound on the server's RSS growth while 20 MB are written with 16 stalled watchers
/// (unbounded queues would hold 16 x 20 MB).
const STALL_RSS_GROWTH_MAX_KIB: u64 = 200 * 1024;

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in /proc/{pid}/status"))
}

/// Samples a process's RSS until stopped; returns the peak.
struct RssSampler {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<u64>,
}

impl RssSampler {
    fn start(pid: u32) -> RssSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut peak = 0;
            while !stopped.load(Ordering::SeqCst) {
                peak = peak.max(rss_kib(pid));
                std::thread::sleep(Duration::from_millis(20));
            }
            peak.max(rss_kib(pid))
        });
        RssSampler { stop, thread }
    }

    fn peak(self) -> u64 {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().expect("rss sampler")
    }
}

fn stall_value(key: &str) -> String {
    let mut value = format!("{key}:");
    value.extend(std::iter::repeat_n('s', STALL_VALUE_BYTES - value.len()));
    value
}

/// Reads a resumed stalled stream: every expected event in order, then (if `compacted`) a
/// cancel with that compact_revision; finally a progress answer proves nothing else was
/// queued. Returns the number of events received.
async fn drain_stalled(
    mut watch: RawWatch,
    expected: Arc<Vec<(i64, String)>>,
    compacted: Option<i64>,
    label: String,
) -> usize {
    let mut received = 0;
    let mut canceled = false;
    let deadline = Instant::now() + PHASE_TIMEOUT;
    while received < expected.len() && !canceled {
        assert!(Instant::now() < deadline, "{label}: not drained in time");
        let response = watch.next_within().await;
        assert_eq!(response.watch_id, 0, "{label}: {response:?}");
        if response.canceled {
            let compact_revision = compacted.unwrap_or_else(|| {
                panic!("{label}: canceled without compaction after {received} events")
            });
            assert_eq!(
                response.compact_revision, compact_revision,
                "{label}: cancel after {received} events"
            );
            canceled = true;
            continue;
        }
        assert!(!response.events.is_empty(), "{label}: {response:?}");
        for event in &response.events {
            let event = pb_ev(event);
            let want = expected.get(received);
            assert_eq!(
                Some((event.revision, &event.key)),
                want.map(|(revision, key)| (*revision, key)),
                "{label}: event #{received} (in order, no gap, no duplicate)"
            );
            assert_eq!(event.value, stall_value(&event.key), "{label}: value");
            received += 1;
        }
    }
    if let Some(compact_revision) = compacted {
        assert!(
            canceled,
            "{label}: received all {received} events although compacted at {compact_revision}"
        );
        assert!(
            expected
                .get(received)
                .is_some_and(|(revision, _)| *revision < compact_revision),
            "{label}: canceled although its next event was not compacted"
        );
    }
    watch.request_progress();
    loop {
        let response = watch.next_within().await;
        assert!(
            pb_is_progress(&response),
            "{label}: after its {received} events, only a progress answer: {response:?}"
        );
        if response.watch_id == -1 {
            break;
        }
    }
    received
}

fn stalled_watchers(compact: bool) {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(Flavor::Capstan, dir.path(), &["--shards=2"]);
    let pid = server.pid().expect("pid");
    let endpoint = server.endpoint();
    let variant = if compact { "compacted" } else { "catch-up" };
    tokio_runtime().block_on(async {
        let mut client = connect(&endpoint).await;
        put(&mut client, "warm-up", "v").await;
        // 16 stalled watchers: after their created answer, half stop releasing flow-control
        // capacity (the h2 connection still runs); the other half announced a 1 GiB window and
        // stop reading their socket at all, so the server's writes block in TCP.
        let mut connections = Vec::new();
        let mut stalled = Vec::new();
        for index in 0..STALLED_CONNECTIONS {
            let window = (index % 2 == 1).then_some(1 << 30);
            let connection = raw_connect_with_window(&endpoint, window).await;
            for _ in 0..STALLED_STREAMS_PER_CONNECTION {
                let mut watch = RawWatch::open(&connection, &endpoint).await;
                watch.create(create_request("big/", "big0"));
                let created = watch.next_within().await;
                assert!(created.created && !created.canceled, "{created:?}");
                stalled.push(watch);
            }
            if index % 2 == 1 {
                connection.pause();
            }
            connections.push(connection);
        }
        // A normal watcher on its own connection, read all along.
        let mut normal_client = connect(&endpoint).await;
        let (_normal_watcher, mut normal_stream) = normal_client
            .watch("big/", Some(WatchOptions::new().with_prefix()))
            .await
            .expect("watch");
        let total = STALL_WRITERS * STALL_PUTS_PER_WRITER;
        let normal = tokio::spawn(async move {
            let mut events = Vec::new();
            while events.len() < total {
                events.extend(events_of(&next_response(&mut normal_stream).await));
            }
            events
        });

        let base_kib = rss_kib(pid);
        let sampler = RssSampler::start(pid);
        let started = Instant::now();
        let writers: Vec<_> = (0..STALL_WRITERS)
            .map(|writer| {
                let endpoint = endpoint.clone();
                tokio::spawn(async move {
                    let mut client = connect(&endpoint).await;
                    let mut acks = Vec::new();
                    for index in 0..STALL_PUTS_PER_WRITER {
                        let key = format!("big/{writer}/{index:04}");
                        let revision = put(&mut client, &key, &stall_value(&key)).await;
                        acks.push((revision, key));
                    }
                    acks
                })
            })
            .collect();
        let mut acks = Vec::new();
        for writer in writers {
            acks.extend(writer.await.expect("writer"));
        }
        acks.sort();
        let final_revision = acks.last().expect("acks").0;
        let write_time = started.elapsed();
        let normal_events = tokio::time::timeout(PHASE_TIMEOUT, normal)
            .await
            .expect("the normal watcher got every event in time")
            .expect("normal watcher task");
        let normal_seen: Vec<(i64, String)> = normal_events
            .iter()
            .map(|event| (event.revision, event.key.clone()))
            .collect();
        assert_eq!(
            normal_seen, acks,
            "the normal watcher gets every put in order while 16 watchers are stalled"
        );
        assert!(normal_events
            .iter()
            .all(|event| event.value == stall_value(&event.key)));
        let after_writes_kib = rss_kib(pid);
        if compact {
            client.compact(final_revision, None).await.expect("compact");
        }

        // Without compaction, more puts go on while the stalled watchers catch up (and rejoin
        // the live path): one writer, so their revisions are known in advance.
        let extra: Vec<(i64, String)> = if compact {
            Vec::new()
        } else {
            (0..STALL_EXTRA_PUTS)
                .map(|index| {
                    (
                        final_revision + 1 + index as i64,
                        format!("big/x/{index:04}"),
                    )
                })
                .collect()
        };
        let mut expected = acks;
        expected.extend(extra.iter().cloned());
        let expected = Arc::new(expected);
        for connection in &connections {
            connection.resume();
        }
        let drains: Vec<_> = stalled
            .into_iter()
            .enumerate()
            .map(|(index, watch)| {
                tokio::spawn(drain_stalled(
                    watch,
                    expected.clone(),
                    compact.then_some(final_revision),
                    format!("stalled watcher #{index}"),
                ))
            })
            .collect();
        for (revision, key) in &extra {
            assert_eq!(
                put(&mut client, key, &stall_value(key)).await,
                *revision,
                "the only writer's revisions"
            );
        }
        let mut received = Vec::new();
        for drain in drains {
            received.push(drain.await.expect("drain task"));
        }
        let peak_kib = sampler.peak();
        let end_kib = rss_kib(pid);
        println!(
            "{variant}: {total} puts of {STALL_VALUE_BYTES} B in {write_time:?}; server RSS \
             before {base_kib} KiB, peak {peak_kib} KiB (+{} KiB), after the writes \
             {after_writes_kib} KiB, at the end {end_kib} KiB; events received by the stalled \
             watchers after resuming: {received:?}",
            peak_kib.saturating_sub(base_kib)
        );
        assert!(
            peak_kib.saturating_sub(base_kib) < STALL_RSS_GROWTH_MAX_KIB,
            "server RSS grew from {base_kib} KiB to {peak_kib} KiB with stalled watchers"
        );
        drop(connections);
    });
}

#[test]
fn stalled_watchers_do_not_block_others_and_catch_up() {
    stalled_watchers(false);
}

#[test]
fn stalled_watchers_behind_compaction_are_canceled() {
    stalled_watchers(true);
}

// ---------------------------------------------------------------------------------------------
// 6. Edge cases found by reading the design
// ---------------------------------------------------------------------------------------------

fn outcome(response: Result<PbWatchResponse, String>) -> String {
    match response {
        Ok(response) => format!(
            "id={} created={} canceled={} events={:?}",
            response.watch_id,
            response.created,
            response.canceled,
            response.events.iter().map(pb_ev).collect::<Vec<_>>()
        ),
        Err(error) => format!("no response: {error}"),
    }
}

/// A client that sends its create request and closes its side of the stream still gets events
/// (etcd ends a Watch call only when the client cancels it or the connection goes away).
async fn half_close_transcript(endpoint: &str) -> Vec<String> {
    let mut log = Vec::new();
    let mut client = connect(endpoint).await;
    let connection = raw_connect(endpoint).await;
    let mut watch = RawWatch::open(&connection, endpoint).await;
    watch.request_and_close(RequestUnion::CreateRequest(create_request("hc/k", "")));
    log.push(format!("created: {}", outcome(watch.next_or_error().await)));
    let revision = put(&mut client, "hc/k", "v").await;
    log.push(format!(
        "after a put at {revision}: {}",
        outcome(watch.next_or_error().await)
    ));
    log
}

#[test]
fn half_closed_watch_stream_keeps_delivering_like_etcd_3_4() {
    let run = |flavor: Flavor| {
        let dir = tempfile::tempdir().expect("tempdir");
        let server = Server::start(flavor, dir.path(), &[]);
        tokio_runtime().block_on(half_close_transcript(&server.endpoint()))
    };
    let etcd = run(Flavor::Etcd);
    let capstan = run(Flavor::Capstan);
    assert_same_transcript(&capstan, &etcd, "half-closed watch stream");
}

const STARVE_HISTORY_PUTS: usize = 1000;
const STARVE_STALLED_WATCHERS: usize = 700;
/// Generous: the history is 1000 events of 10 KiB, served in steps of 256 revisions.
const STARVE_TIMEOUT: Duration = Duration::from_secs(20);

/// More than 512 catching-up watchers on a stream that is not read must not keep the shard
/// from feeding another stream's catching-up watcher (etcd picks unsynced watchers from a map
/// each round, so none waits forever).
#[test]
fn stalled_catching_up_watchers_do_not_starve_others() {
    let dir = tempfile::tempdir().expect("tempdir");
    // One shard, so both streams share one hub.
    let server = Server::start(Flavor::Capstan, dir.path(), &["--shards=1"]);
    let endpoint = server.endpoint();
    tokio_runtime().block_on(async {
        let mut client = connect(&endpoint).await;
        let mut revisions = Vec::new();
        for index in 0..STARVE_HISTORY_PUTS {
            let key = format!("st/{index:04}");
            revisions.push(put(&mut client, &key, &stall_value(&key)).await);
        }
        // 700 watchers from revision 1 (10 MB of history each) on one stream, which reads
        // their created answers and then nothing more.
        let connection = raw_connect(&endpoint).await;
        let mut stalled = RawWatch::open(&connection, &endpoint).await;
        for _ in 0..STARVE_STALLED_WATCHERS {
            stalled.create(WatchCreateRequest {
                start_revision: 1,
                ..create_request("st/", "st0")
            });
        }
        let mut created = 0;
        let mut events_per_watcher: HashMap<i64, usize> = HashMap::new();
        while created < STARVE_STALLED_WATCHERS {
            let response = stalled.next_within().await;
            if response.created {
                created += 1;
            } else {
                *events_per_watcher.entry(response.watch_id).or_default() += response.events.len();
            }
        }
        let caught_up = events_per_watcher
            .values()
            .filter(|&&events| events == STARVE_HISTORY_PUTS)
            .count();
        assert!(
            STARVE_STALLED_WATCHERS - caught_up > 512,
            "precondition: more than 512 watchers still catching up ({caught_up} caught up)"
        );
        // Another stream's watcher from revision 1 gets its history.
        let (_watcher, mut stream) = client
            .watch(
                "st/",
                Some(WatchOptions::new().with_prefix().with_start_revision(1)),
            )
            .await
            .expect("watch");
        let mut got = Vec::new();
        while got.len() < STARVE_HISTORY_PUTS {
            let response = tokio::time::timeout(STARVE_TIMEOUT, stream.message())
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "a catching-up watcher got {} of {STARVE_HISTORY_PUTS} events and then \
                         nothing for {STARVE_TIMEOUT:?}, while {} catching-up watchers of a stalled \
                         stream come first",
                        got.len(),
                        STARVE_STALLED_WATCHERS - caught_up
                    )
                })
                .expect("watch stream")
                .expect("watch stream ended");
            got.extend(events_of(&response).iter().map(|event| event.revision));
        }
        assert_eq!(got, revisions, "the history, in order");
        drop(stalled);
        drop(connection);
    });
}

const FLOOD_WATCHERS: usize = 4000;
const FLOOD_OBSERVATION: Duration = Duration::from_secs(4);
const FLOOD_RSS_GROWTH_MAX_KIB: u64 = 64 * 1024;

/// RSS (KiB) of a server before and at its peak while a stream that is not read holds 4000 idle
/// watchers that asked for progress notifications every 10 ms. etcd stops producing them while
/// the stream's send is blocked; queued without bound they grow the heap by megabytes a second.
fn progress_flood_growth(flavor: Flavor) -> (u64, u64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let flag = match flavor {
        Flavor::Capstan => "--watch-progress-notify-interval=10ms",
        Flavor::Etcd => "--experimental-watch-progress-notify-interval=10ms",
    };
    let server = Server::start(flavor, dir.path(), &[flag]);
    let pid = server.pid().expect("pid");
    let endpoint = server.endpoint();
    tokio_runtime().block_on(async {
        let connection = raw_connect(&endpoint).await;
        let mut watch = RawWatch::open(&connection, &endpoint).await;
        let base = rss_kib(pid);
        let sampler = RssSampler::start(pid);
        // The watchers are created, and their answers never read.
        for index in 0..FLOOD_WATCHERS {
            watch.create(WatchCreateRequest {
                progress_notify: true,
                ..create_request(&format!("idle/{index}"), "")
            });
        }
        tokio::time::sleep(FLOOD_OBSERVATION).await;
        let peak = sampler.peak();
        drop(watch);
        drop(connection);
        (base, peak)
    })
}

#[test]
fn unread_progress_notifications_stay_bounded_like_etcd_3_4() {
    let (etcd_base, etcd_peak) = progress_flood_growth(Flavor::Etcd);
    let (base, peak) = progress_flood_growth(Flavor::Capstan);
    println!(
        "{FLOOD_WATCHERS} idle watchers with 10 ms progress notifications on an unread stream, \
         {FLOOD_OBSERVATION:?}: etcd RSS {etcd_base} -> {etcd_peak} KiB, Capstan RSS {base} -> \
         {peak} KiB"
    );
    assert!(
        etcd_peak.saturating_sub(etcd_base) < FLOOD_RSS_GROWTH_MAX_KIB,
        "reference: etcd's RSS grew from {etcd_base} to {etcd_peak} KiB"
    );
    assert!(
        peak.saturating_sub(base) < FLOOD_RSS_GROWTH_MAX_KIB,
        "Capstan's RSS grew from {base} to {peak} KiB in {FLOOD_OBSERVATION:?} while progress \
         notifications for an unread stream pile up (etcd: {etcd_base} -> {etcd_peak} KiB)"
    );
}
