//! `/metrics` of real `capstan` members, read with a strict Prometheus text-format parser:
//! - every series that `contrib/` (the Grafana dashboard and the Prometheus rules) names is
//!   exported, by a 3-member cluster's leader after some traffic;
//! - the series etcd's tooling relies on have etcd 3.6's type and label names;
//! - the counters moved with the traffic (puts, ranges, txns, deletes, watches, gRPC calls,
//!   bytes, WAL fsyncs, peer bytes and round trips);
//! - `--metrics extensive` adds `grpc_server_handling_seconds`, basic does not;
//! - Debian's `etcdctl check datascale` (3.4), which reads `process_resident_memory_bytes` from
//!   `/metrics` on its first endpoint, passes.
mod cluster;
mod common;

use cluster::*;
use common::*;

use etcd_client::{Compare, CompareOp, GetOptions, Txn, TxnOp, WatchOptions};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

const PUTS: u64 = 40;

// ---------------------------------------------------------------------------------------------
// A strict parser of the text format (0.0.4)
// ---------------------------------------------------------------------------------------------

/// One sample line.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// One family: its `# TYPE` and samples (histogram samples under the family's name).
#[derive(Debug, Clone, Default)]
struct Family {
    kind: String,
    help: Option<String>,
    samples: Vec<Sample>,
}

/// Parses a label block `{a="x",b="y"}` starting at `text[0] == '{'`; returns the labels and
/// the rest after `}`.
fn parse_labels(text: &str) -> Result<(BTreeMap<String, String>, &str), String> {
    let mut labels = BTreeMap::new();
    let mut rest = &text[1..];
    loop {
        if let Some(after) = rest.strip_prefix('}') {
            return Ok((labels, after));
        }
        let equals = rest.find('=').ok_or("label without '='")?;
        let name = &rest[..equals];
        if name.is_empty()
            || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            || name.starts_with(|c: char| c.is_ascii_digit())
        {
            return Err(format!("bad label name {name:?}"));
        }
        rest = rest[equals + 1..]
            .strip_prefix('"')
            .ok_or("label value without quote")?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next() {
                None => return Err("unterminated label value".into()),
                Some((index, '"')) => break index,
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    other => return Err(format!("bad escape {other:?}")),
                },
                Some((_, c)) => value.push(c),
            }
        };
        if labels.insert(name.to_string(), value).is_some() {
            return Err(format!("label {name} twice"));
        }
        rest = &rest[end + 1..];
        if let Some(after) = rest.strip_prefix(',') {
            rest = after;
        } else if !rest.starts_with('}') {
            return Err("expected ',' or '}'".into());
        }
    }
}

fn parse_value(text: &str) -> Result<f64, String> {
    match text {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => text.parse().map_err(|_| format!("bad value {text:?}")),
    }
}

fn is_metric_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// The family a sample belongs to: histogram samples end in `_bucket`, `_sum`, `_count`.
fn family_of<'a>(name: &'a str, families: &BTreeMap<String, Family>) -> Option<&'a str> {
    if families.contains_key(name) {
        return Some(name);
    }
    ["_bucket", "_sum", "_count"].iter().find_map(|suffix| {
        name.strip_suffix(suffix)
            .filter(|base| families.get(*base).is_some_and(|f| f.kind == "histogram"))
    })
}

/// Parses the whole exposition strictly: every sample belongs to a family declared by a
/// `# TYPE` line before it, no family is declared twice, histograms are well formed.
fn parse(text: &str) -> Result<BTreeMap<String, Family>, String> {
    let mut families: BTreeMap<String, Family> = BTreeMap::new();
    let mut helps: BTreeMap<String, String> = BTreeMap::new();
    for (number, line) in text.lines().enumerate() {
        let fail = |why: String| format!("line {}: {why}: {line:?}", number + 1);
        if line.is_empty() {
            continue;
        }
        if let Some(help) = line.strip_prefix("# HELP ") {
            let (name, text) = help.split_once(' ').unwrap_or((help, ""));
            helps.insert(name.to_string(), text.to_string());
            continue;
        }
        if let Some(declaration) = line.strip_prefix("# TYPE ") {
            let (name, kind) = declaration
                .split_once(' ')
                .ok_or_else(|| fail("TYPE without kind".into()))?;
            if !is_metric_name(name) {
                return Err(fail("bad family name".into()));
            }
            if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                return Err(fail(format!("unknown type {kind}")));
            }
            let family = Family {
                kind: kind.to_string(),
                help: helps.get(name).cloned(),
                samples: Vec::new(),
            };
            if families.insert(name.to_string(), family).is_some() {
                return Err(fail("family declared twice".into()));
            }
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let name_end = line
            .find(['{', ' '])
            .ok_or_else(|| fail("no value".into()))?;
        let name = &line[..name_end];
        if !is_metric_name(name) {
            return Err(fail("bad metric name".into()));
        }
        let (labels, rest) = if line[name_end..].starts_with('{') {
            parse_labels(&line[name_end..]).map_err(fail)?
        } else {
            (BTreeMap::new(), &line[name_end..])
        };
        let mut fields = rest.split_ascii_whitespace();
        let value =
            parse_value(fields.next().ok_or_else(|| fail("no value".into()))?).map_err(fail)?;
        if let Some(timestamp) = fields.next() {
            timestamp
                .parse::<i64>()
                .map_err(|_| fail("bad timestamp".into()))?;
        }
        if fields.next().is_some() {
            return Err(fail("trailing fields".into()));
        }
        let family = family_of(name, &families)
            .ok_or_else(|| fail(format!("sample of undeclared family {name}")))?
            .to_string();
        families
            .get_mut(&family)
            .expect("declared")
            .samples
            .push(Sample {
                name: name.to_string(),
                labels,
                value,
            });
    }
    for (name, family) in &families {
        if family.kind == "histogram" {
            check_histogram(name, family)?;
        }
    }
    Ok(families)
}

/// One histogram row: its (le, cumulative count) buckets and its `_count`.
type HistogramRow = (Vec<(f64, f64)>, Option<f64>);

/// Every histogram row has ascending `le` buckets ending in `+Inf`, cumulative counts, and a
/// `_count` equal to the `+Inf` bucket.
fn check_histogram(name: &str, family: &Family) -> Result<(), String> {
    let mut rows: BTreeMap<Vec<(String, String)>, HistogramRow> = BTreeMap::new();
    for sample in &family.samples {
        let mut key: Vec<(String, String)> = sample
            .labels
            .iter()
            .filter(|(label, _)| *label != "le")
            .map(|(label, value)| (label.clone(), value.clone()))
            .collect();
        key.sort();
        let row = rows.entry(key).or_default();
        if sample.name.ends_with("_bucket") {
            let le = sample
                .labels
                .get("le")
                .ok_or_else(|| format!("{name}: bucket without le"))?;
            row.0.push((parse_value(le)?, sample.value));
        } else if sample.name.ends_with("_count") {
            row.1 = Some(sample.value);
        }
    }
    for (labels, (buckets, count)) in rows {
        let last = buckets
            .last()
            .ok_or_else(|| format!("{name}{labels:?}: no buckets"))?;
        if last.0 != f64::INFINITY || Some(last.1) != count {
            return Err(format!("{name}{labels:?}: +Inf bucket and _count disagree"));
        }
        for pair in buckets.windows(2) {
            if pair[0].0 >= pair[1].0 || pair[0].1 > pair[1].1 {
                return Err(format!(
                    "{name}{labels:?}: buckets not ascending/cumulative"
                ));
            }
        }
    }
    Ok(())
}

#[test]
fn the_parser_is_strict() {
    let good = "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\\\"\"} 2\n\
                # TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 2\n";
    let families = parse(good).expect("valid");
    assert_eq!(families["a_total"].samples[0].labels["x"], "1\"");
    for bad in [
        "a 1\n",
        "# TYPE a counter\na{x=1} 1\n",
        "# TYPE a counter\na 1 2 3\n",
        "# TYPE a counter\n# TYPE a counter\n",
        "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_count 3\n",
        "# TYPE h histogram\nh_bucket{le=\"2\"} 2\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_count 2\n",
    ] {
        assert!(parse(bad).is_err(), "accepted {bad:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Scraping
// ---------------------------------------------------------------------------------------------

/// GET `/metrics` on `address` over HTTP/1.1 (the body is read to the connection's end).
fn scrape(address: &str) -> String {
    let mut stream = TcpStream::connect(address).expect("connect to the metrics port");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .expect("send the request");
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).expect("read the response");
    let text = String::from_utf8(bytes).expect("utf-8");
    let (head, body) = text.split_once("\r\n\r\n").expect("a head and a body");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let chunked = head
        .lines()
        .any(|line| line.eq_ignore_ascii_case("transfer-encoding: chunked"));
    if chunked {
        dechunk(body)
    } else {
        body.to_string()
    }
}

fn dechunk(mut body: &str) -> String {
    let mut text = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n").expect("chunk size");
        let size = usize::from_str_radix(size.trim(), 16).expect("hex chunk size");
        if size == 0 {
            return text;
        }
        text.push_str(&rest[..size]);
        body = &rest[size + 2..];
    }
}

fn scrape_parsed(address: &str) -> BTreeMap<String, Family> {
    let text = scrape(address);
    parse(&text).unwrap_or_else(|error| panic!("{error}\n{text}"))
}

/// The sum of the samples named `name` (a family or a histogram's `_count`/`_sum`) whose
/// labels include `with`.
fn value(families: &BTreeMap<String, Family>, name: &str, with: &[(&str, &str)]) -> f64 {
    families
        .values()
        .flat_map(|family| &family.samples)
        .filter(|sample| sample.name == name)
        .filter(|sample| {
            with.iter()
                .all(|(label, value)| sample.labels.get(*label).map(String::as_str) == Some(*value))
        })
        .map(|sample| sample.value)
        .sum()
}

// ---------------------------------------------------------------------------------------------
// What contrib/ references
// ---------------------------------------------------------------------------------------------

/// Every series name in the dashboard and the rules: identifiers starting with a prefix of
/// ours or etcd's, histogram suffixes removed.
fn contrib_series() -> BTreeSet<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib");
    let mut names = BTreeSet::new();
    for file in [
        "grafana/capstan-dashboard.json",
        "prometheus/capstan-alerts.yaml",
    ] {
        let text = std::fs::read_to_string(root.join(file)).expect("read a contrib file");
        let mut word = String::new();
        for c in text.chars().chain(std::iter::once(' ')) {
            if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
                word.push(c);
                continue;
            }
            let is_series = ["etcd_", "grpc_server_", "process_", "capstan_"]
                .iter()
                .any(|prefix| word.starts_with(prefix))
                && !word.ends_with('_');
            if is_series {
                names.insert(word.clone());
            }
            word.clear();
        }
    }
    assert!(
        names.len() > 30,
        "too few series found in contrib: {names:?}"
    );
    names
}

/// (name, etcd 3.6's type, label names) for the series etcd's tooling relies on.
const ETCD_SERIES: &[(&str, &str, &[&str])] = &[
    ("etcd_server_has_leader", "gauge", &[]),
    ("etcd_server_is_leader", "gauge", &[]),
    ("etcd_server_leader_changes_seen_total", "counter", &[]),
    ("etcd_server_proposals_committed_total", "gauge", &[]),
    ("etcd_server_proposals_applied_total", "gauge", &[]),
    ("etcd_server_proposals_pending", "gauge", &[]),
    ("etcd_server_proposals_failed_total", "counter", &[]),
    ("etcd_server_quota_backend_bytes", "gauge", &[]),
    ("etcd_server_version", "gauge", &["server_version"]),
    ("etcd_server_id", "gauge", &["server_id"]),
    ("etcd_server_heartbeat_send_failures_total", "counter", &[]),
    ("etcd_server_slow_apply_total", "counter", &[]),
    ("etcd_disk_wal_fsync_duration_seconds", "histogram", &[]),
    ("etcd_disk_wal_write_bytes_total", "gauge", &[]),
    (
        "etcd_disk_backend_commit_duration_seconds",
        "histogram",
        &[],
    ),
    (
        "etcd_disk_backend_defrag_duration_seconds",
        "histogram",
        &[],
    ),
    (
        "etcd_disk_backend_snapshot_duration_seconds",
        "histogram",
        &[],
    ),
    ("etcd_mvcc_db_total_size_in_bytes", "gauge", &[]),
    ("etcd_mvcc_db_total_size_in_use_in_bytes", "gauge", &[]),
    ("etcd_mvcc_put_total", "counter", &[]),
    ("etcd_mvcc_delete_total", "counter", &[]),
    ("etcd_mvcc_range_total", "counter", &[]),
    ("etcd_mvcc_txn_total", "counter", &[]),
    ("etcd_debugging_mvcc_keys_total", "gauge", &[]),
    ("etcd_debugging_mvcc_watcher_total", "gauge", &[]),
    ("etcd_debugging_mvcc_slow_watcher_total", "gauge", &[]),
    ("etcd_network_peer_sent_bytes_total", "counter", &["To"]),
    (
        "etcd_network_peer_received_bytes_total",
        "counter",
        &["From"],
    ),
    ("etcd_network_peer_sent_failures_total", "counter", &["To"]),
    (
        "etcd_network_peer_round_trip_time_seconds",
        "histogram",
        &["To", "le"],
    ),
    ("etcd_network_client_grpc_sent_bytes_total", "counter", &[]),
    (
        "etcd_network_client_grpc_received_bytes_total",
        "counter",
        &[],
    ),
    (
        "grpc_server_started_total",
        "counter",
        &["grpc_method", "grpc_service", "grpc_type"],
    ),
    (
        "grpc_server_handled_total",
        "counter",
        &["grpc_code", "grpc_method", "grpc_service", "grpc_type"],
    ),
    (
        "grpc_server_msg_received_total",
        "counter",
        &["grpc_method", "grpc_service", "grpc_type"],
    ),
    (
        "grpc_server_msg_sent_total",
        "counter",
        &["grpc_method", "grpc_service", "grpc_type"],
    ),
    (
        "grpc_server_handling_seconds",
        "histogram",
        &["grpc_method", "grpc_service", "grpc_type", "le"],
    ),
    ("process_resident_memory_bytes", "gauge", &[]),
    ("process_cpu_seconds_total", "counter", &[]),
    ("process_open_fds", "gauge", &[]),
    ("process_max_fds", "gauge", &[]),
    ("process_start_time_seconds", "gauge", &[]),
];

/// etcd 3.6's buckets of the histograms the mixin's alerts read.
const ETCD_BUCKETS: &[(&str, &[&str])] = &[
    (
        "etcd_disk_wal_fsync_duration_seconds",
        &[
            "0.001", "0.002", "0.004", "0.008", "0.016", "0.032", "0.064", "0.128", "0.256",
            "0.512", "1.024", "2.048", "4.096", "8.192", "+Inf",
        ],
    ),
    (
        "etcd_disk_backend_commit_duration_seconds",
        &[
            "0.001", "0.002", "0.004", "0.008", "0.016", "0.032", "0.064", "0.128", "0.256",
            "0.512", "1.024", "2.048", "4.096", "8.192", "+Inf",
        ],
    ),
    (
        "etcd_disk_backend_defrag_duration_seconds",
        &[
            "0.1", "0.2", "0.4", "0.8", "1.6", "3.2", "6.4", "12.8", "25.6", "51.2", "102.4",
            "204.8", "409.6", "+Inf",
        ],
    ),
    (
        "etcd_network_peer_round_trip_time_seconds",
        &[
            "0.0001", "0.0002", "0.0004", "0.0008", "0.0016", "0.0032", "0.0064", "0.0128",
            "0.0256", "0.0512", "0.1024", "0.2048", "0.4096", "0.8192", "+Inf",
        ],
    ),
    (
        "grpc_server_handling_seconds",
        &[
            "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf",
        ],
    ),
];

fn check_etcd_types(families: &BTreeMap<String, Family>) {
    for (name, kind, labels) in ETCD_SERIES {
        let family = families
            .get(*name)
            .unwrap_or_else(|| panic!("{name} is not exported"));
        assert_eq!(family.kind, *kind, "type of {name}");
        assert!(family.help.is_some(), "{name} has no HELP");
        for sample in &family.samples {
            let names: Vec<&str> = sample.labels.keys().map(String::as_str).collect();
            let mut expected: Vec<&str> = labels.to_vec();
            expected.retain(|label| *label != "le");
            if sample.name.ends_with("_bucket") {
                expected.push("le");
            }
            expected.sort();
            assert_eq!(names, expected, "labels of {}", sample.name);
        }
    }
    for (name, bounds) in ETCD_BUCKETS {
        let family = &families[*name];
        let first_row = family
            .samples
            .iter()
            .find(|sample| sample.name.ends_with("_bucket"))
            .map(|sample| {
                let mut row = sample.labels.clone();
                row.remove("le");
                row
            })
            .expect("a bucket");
        let les: Vec<&str> = family
            .samples
            .iter()
            .filter(|sample| sample.name.ends_with("_bucket"))
            .filter(|sample| {
                let mut row = sample.labels.clone();
                row.remove("le");
                row == first_row
            })
            .map(|sample| sample.labels["le"].as_str())
            .collect();
        assert_eq!(les, *bounds, "buckets of {name}");
    }
}

fn metrics_address(port: u16) -> String {
    format!("127.0.0.1:{port}")
}

/// Scrapes `port` until `ready` holds of the parsed families (values settle asynchronously:
/// the page store commits on its own thread, heartbeats come every 100 ms).
fn scrape_until(
    port: u16,
    what: &str,
    ready: impl Fn(&BTreeMap<String, Family>) -> bool,
) -> BTreeMap<String, Family> {
    let deadline = Instant::now() + EVENTUALLY;
    loop {
        let families = scrape_parsed(&metrics_address(port));
        if ready(&families) {
            return families;
        }
        assert!(Instant::now() < deadline, "never: {what}");
        std::thread::sleep(POLL);
    }
}

/// Puts, a watched put, a range, a txn of two puts and a delete. Returns the client and its
/// watch, which stay open while the caller scrapes.
async fn traffic(
    endpoint: &str,
) -> (
    etcd_client::Client,
    etcd_client::Watcher,
    etcd_client::WatchStream,
) {
    let mut client = connect(endpoint).await;
    let (watcher, mut events) = client
        .watch("watched", Some(WatchOptions::new().with_prefix()))
        .await
        .expect("watch");
    for index in 0..PUTS {
        client
            .put(format!("key-{index}"), "value", None)
            .await
            .expect("put");
    }
    client
        .put("watched/one", "v", None)
        .await
        .expect("put watched");
    let mut seen = 0;
    while seen == 0 {
        let response = events.message().await.expect("watch stream").expect("open");
        seen += response.events().len();
    }
    client
        .get("key-", Some(GetOptions::new().with_prefix()))
        .await
        .expect("range");
    client
        .txn(
            Txn::new()
                .when([Compare::value("key-0", CompareOp::Equal, "value")])
                .and_then([
                    TxnOp::put("txn-a", "1", None),
                    TxnOp::put("txn-b", "2", None),
                ]),
        )
        .await
        .expect("txn");
    client.delete("key-1", None).await.expect("delete");
    (client, watcher, events)
}

#[test]
fn a_cluster_exports_every_series_contrib_uses_with_etcds_types_and_moving_counters() {
    let _serial = serial();
    let metrics_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let mut spec = ClusterSpec::new(3).flags(&["--metrics=extensive"]);
    spec.shards = 2;
    for (member, port) in metrics_ports.iter().enumerate() {
        spec = spec.member_flags(
            member,
            &[&format!("--listen-metrics-urls=http://127.0.0.1:{port}")],
        );
    }
    let cluster = Cluster::start(spec);
    let runtime = tokio_runtime();
    let open_watch = runtime.block_on(traffic(&cluster.endpoint(0)));
    let leader = (0..3)
        .find(|member| {
            let families = scrape_parsed(&metrics_address(metrics_ports[*member]));
            value(&families, "etcd_server_is_leader", &[]) == 1.0
        })
        .expect("a leader");
    let leader_port = metrics_ports[leader];
    let families = scrape_until(leader_port, "peer round trips and backend commits", |f| {
        value(f, "etcd_network_peer_round_trip_time_seconds_count", &[]) > 0.0
            && value(f, "etcd_disk_backend_commit_duration_seconds_count", &[]) > 0.0
            && value(f, "etcd_mvcc_put_total", &[]) >= (PUTS + 3) as f64
    });

    // 1. Every series the dashboard and the alerts use.
    let missing: Vec<String> = contrib_series()
        .into_iter()
        .filter(|name| family_of(name, &families).is_none())
        .collect();
    assert!(
        missing.is_empty(),
        "contrib/ uses series the leader does not export: {missing:?}"
    );

    // 2. etcd's types, labels and buckets.
    check_etcd_types(&families);

    // 3. Counters that moved with the traffic, on the leader.
    let at_least = |name: &str, with: &[(&str, &str)], minimum: f64| {
        let found = value(&families, name, with);
        assert!(
            found >= minimum,
            "{name}{with:?} = {found}, expected >= {minimum}"
        );
    };
    at_least("etcd_mvcc_put_total", &[], (PUTS + 3) as f64);
    at_least("etcd_mvcc_delete_total", &[], 1.0);
    at_least("etcd_mvcc_txn_total", &[], 1.0);
    at_least("etcd_debugging_mvcc_keys_total", &[], (PUTS + 2) as f64);
    at_least(
        "etcd_server_proposals_committed_total",
        &[],
        (PUTS + 4) as f64,
    );
    at_least(
        "etcd_server_proposals_applied_total",
        &[],
        (PUTS + 4) as f64,
    );
    at_least("etcd_server_leader_changes_seen_total", &[], 1.0);
    at_least("etcd_disk_wal_fsync_duration_seconds_count", &[], 1.0);
    at_least("etcd_disk_wal_write_bytes_total", &[], 1000.0);
    at_least("capstan_wal_sync_records_count", &[], 1.0);
    at_least("capstan_wal_sync_records_sum", &[], (PUTS + 4) as f64);
    at_least("etcd_network_peer_sent_bytes_total", &[], 1000.0);
    at_least("etcd_network_peer_received_bytes_total", &[], 100.0);
    for (member_index, member) in cluster.members.iter().enumerate() {
        if member_index == leader {
            continue;
        }
        let to = format!("{:x}", member.id);
        at_least("etcd_network_peer_sent_bytes_total", &[("To", &to)], 100.0);
        at_least(
            "etcd_network_peer_round_trip_time_seconds_count",
            &[("To", &to)],
            1.0,
        );
    }

    // 4. The member the client talked to counted the calls (member 0, the leader or not).
    let families = scrape_parsed(&metrics_address(metrics_ports[0]));
    let at_least = |name: &str, with: &[(&str, &str)], minimum: f64| {
        let found = value(&families, name, with);
        assert!(
            found >= minimum,
            "member 0: {name}{with:?} = {found}, expected >= {minimum}"
        );
    };
    let put = [("grpc_method", "Put"), ("grpc_service", "etcdserverpb.KV")];
    at_least("grpc_server_started_total", &put, (PUTS + 1) as f64);
    at_least(
        "grpc_server_handled_total",
        &[put[0], put[1], ("grpc_code", "OK")],
        (PUTS + 1) as f64,
    );
    at_least("grpc_server_msg_received_total", &put, (PUTS + 1) as f64);
    at_least("grpc_server_msg_sent_total", &put, (PUTS + 1) as f64);
    at_least(
        "grpc_server_handling_seconds_count",
        &put,
        (PUTS + 1) as f64,
    );
    let watch = [("grpc_method", "Watch"), ("grpc_type", "bidi_stream")];
    at_least("grpc_server_started_total", &watch, 1.0);
    at_least("grpc_server_msg_sent_total", &watch, 2.0);
    at_least("etcd_mvcc_range_total", &[], 1.0);
    at_least("etcd_debugging_mvcc_watcher_total", &[], 1.0);
    at_least(
        "etcd_network_client_grpc_received_bytes_total",
        &[],
        (PUTS * 10) as f64,
    );
    at_least(
        "etcd_network_client_grpc_sent_bytes_total",
        &[],
        (PUTS * 10) as f64,
    );
    at_least("capstan_shard_grpc_calls_in_flight", &[], 1.0);
    let shards: BTreeSet<&str> = families["capstan_shard_grpc_calls_in_flight"]
        .samples
        .iter()
        .map(|sample| sample.labels["shard"].as_str())
        .collect();
    assert!(shards.contains("0"), "per-shard rows: {shards:?}");
    drop(open_watch);
    drop(runtime);
    drop(cluster);
}

#[test]
fn basic_metrics_leave_out_the_handling_time_histogram() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let server = Server::start(
        Flavor::Capstan,
        dir.path(),
        &[&format!("--listen-metrics-urls=http://127.0.0.1:{port}")],
    );
    let runtime = tokio_runtime();
    runtime.block_on(async {
        let mut client = connect(&server.endpoint()).await;
        client.put("k", "v", None).await.expect("put");
    });
    let families = scrape_parsed(&metrics_address(port));
    assert!(!families.contains_key("grpc_server_handling_seconds"));
    assert!(
        value(
            &families,
            "grpc_server_started_total",
            &[("grpc_method", "Put")]
        ) >= 1.0
    );
    // A lone member has no peers: like etcd, no peer rows at all.
    assert!(!families.contains_key("etcd_network_peer_sent_bytes_total"));
    let version = &families["etcd_server_version"].samples[0].labels["server_version"];
    assert!(version.starts_with("3.6."), "{version}");
}

#[test]
fn etcdctl_check_datascale_passes() {
    let found = std::process::Command::new("sh")
        .args(["-c", "command -v etcdctl"])
        .output()
        .is_ok_and(|output| output.status.success());
    if !found {
        eprintln!("etcdctl is not installed: etcdctl_check_datascale_passes skipped");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::capstan(dir.path());
    let output = etcdctl(&server.endpoint(), &["check", "datascale"], None);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("PASS"),
        "etcdctl check datascale:\n{stdout}\n{stderr}"
    );
}
