//! The traffic: [`CLIENTS`] clients, each bound to one member or balanced over all of them,
//! send a seeded mix of KV, txn and lease requests on a small key set; a maintenance task
//! compacts (never past what every watcher has seen, so the watched history stays complete)
//! and now and then defragments a member.
//!
//! Key space, all under [`PREFIX`]:
//! - [`REGISTER_KEYS`]: puts, gets, deletes and compare-and-set txns. Nothing else writes
//!   them, so each is a register the linearizability checker can judge.
//! - [`LEASE_KEYS`]: puts with a lease; revoking or expiring the lease deletes them. Judged by
//!   the replay of the watched history (`checks.rs`), like every read.
//! - [`SENTINEL_KEY`]: written once at the end; its revision is where every watcher must get.

use super::client::{connect, execute};
use super::history::{Actor, Clock, KeyValue, Outcome, Record, Request, Response, ValueSource};
use etcd_client::Client;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub const PREFIX: &str = "rob/";
pub const REGISTER_KEYS: [&str; 5] = ["rob/k0", "rob/k1", "rob/k2", "rob/k3", "rob/k4"];
pub const LEASE_KEYS: [&str; 3] = ["rob/l0", "rob/l1", "rob/l2"];
pub const SENTINEL_KEY: &str = "rob/zz-end";
/// Clients over every member (balanced); the others are bound to member `client % members`.
pub const CLIENTS: usize = 8;
pub const CLIENTS_OVER_ALL_MEMBERS: usize = 2;
/// Leases a client holds at most at once.
const LEASES_PER_CLIENT: usize = 2;
/// Lease time-to-live, seconds: short enough to expire during faults now and then.
const LEASE_TTL_SECONDS: std::ops::RangeInclusive<i64> = 2..=6;
/// Pause between requests of one client, milliseconds.
const THINK_MS: std::ops::Range<u64> = 0..10;
/// Pause after a failed request, milliseconds (do not spin against a dead member).
const BACKOFF_MS: std::ops::Range<u64> = 50..150;
/// Pause between compactions, and between them while a failpoint needs compactions.
const COMPACT_EVERY_MS: std::ops::Range<u64> = 700..1500;
const COMPACT_FAST_MS: u64 = 150;
/// A compaction keeps at least this many revisions.
const COMPACT_KEEP_REVISIONS: i64 = 20;
/// Pause between defragmentations of a random member, and of the member a failpoint waits on.
const DEFRAG_EVERY_MS: std::ops::Range<u64> = 3000..6000;
const DEFRAG_FAST_MS: u64 = 300;

/// What the fault driver and the end of a run tell the traffic.
pub struct Control {
    pub stop: AtomicBool,
    /// Compact every [`COMPACT_FAST_MS`] (a compaction failpoint is armed).
    pub compact_fast: AtomicBool,
    /// Defragment this member every [`DEFRAG_FAST_MS`] (a defrag failpoint is armed); -1: none.
    pub defrag_member: AtomicI64,
    /// Per watcher: the highest revision it received (compaction never goes past the lowest).
    pub watch_progress: Vec<AtomicI64>,
    /// The highest header revision any response carried.
    pub highest_revision: AtomicI64,
    /// Requests sent, for liveness messages.
    pub sent: AtomicUsize,
}

impl Control {
    pub fn new(watchers: usize) -> Control {
        Control {
            stop: AtomicBool::new(false),
            compact_fast: AtomicBool::new(false),
            defrag_member: AtomicI64::new(-1),
            watch_progress: (0..watchers).map(|_| AtomicI64::new(0)).collect(),
            highest_revision: AtomicI64::new(0),
            sent: AtomicUsize::new(0),
        }
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    fn saw(&self, record: &Record) {
        self.sent.fetch_add(1, Ordering::Relaxed);
        if let Some(revision) = record.outcome.response().and_then(Response::revision) {
            self.highest_revision.fetch_max(revision, Ordering::SeqCst);
        }
    }
}

/// What one task recorded.
#[derive(Default)]
pub struct TaskLog {
    pub records: Vec<Record>,
    /// Responses that contradict themselves.
    pub anomalies: Vec<String>,
}

/// Where client `client` sends its requests: `Some(member)` or every member.
pub fn client_member(client: usize, members: usize) -> Option<usize> {
    (client < CLIENTS - CLIENTS_OVER_ALL_MEMBERS).then_some(client % members)
}

pub fn client_seed(seed: u64, stream: u64) -> u64 {
    seed ^ (stream + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

async fn pause(rng: &mut StdRng, range: std::ops::Range<u64>) {
    tokio::time::sleep(Duration::from_millis(rng.gen_range(range))).await;
}

/// One client's state between requests.
struct ClientState {
    /// Per register key: the value and mod revision last seen (None: absent).
    last_seen: Vec<Option<KeyValue>>,
    /// Leases this client granted and has not revoked.
    leases: Vec<i64>,
    values: ValueSource,
}

/// A client's loop until [`Control::stop`].
pub async fn client_loop(
    client_id: usize,
    member: Option<usize>,
    urls: Vec<String>,
    seed: u64,
    clock: Clock,
    control: Arc<Control>,
) -> TaskLog {
    let mut rng = StdRng::seed_from_u64(client_seed(seed, client_id as u64));
    let mut log = TaskLog::default();
    let mut client = match connect(&urls).await {
        Ok(client) => client,
        Err(error) => {
            log.anomalies.push(error);
            return log;
        }
    };
    let mut state = ClientState {
        last_seen: vec![None; REGISTER_KEYS.len()],
        leases: Vec::new(),
        values: ValueSource::new(client_id),
    };
    let actor = Actor::Client(client_id);
    while !control.stopping() {
        let request = choose(&mut rng, &mut state);
        let record = execute(
            &mut client,
            &clock,
            actor,
            member,
            request,
            &mut log.anomalies,
        )
        .await;
        control.saw(&record);
        let ok = matches!(record.outcome, Outcome::Ok(_));
        learn(&mut state, &record);
        // A granted lease gets a key at once.
        if let (Request::LeaseGrant { .. }, Outcome::Ok(Response::LeaseGrant { id, .. })) =
            (&record.request, &record.outcome)
        {
            let id = *id;
            log.records.push(record);
            let request = lease_put(&mut rng, &mut state, id);
            let record = execute(
                &mut client,
                &clock,
                actor,
                member,
                request,
                &mut log.anomalies,
            )
            .await;
            control.saw(&record);
            log.records.push(record);
        } else {
            log.records.push(record);
        }
        if ok {
            pause(&mut rng, THINK_MS).await;
        } else {
            pause(&mut rng, BACKOFF_MS).await;
        }
    }
    log
}

fn lease_put(rng: &mut StdRng, state: &mut ClientState, lease: i64) -> Request {
    Request::Put {
        key: LEASE_KEYS[rng.gen_range(0..LEASE_KEYS.len())].to_string(),
        value: state.values.next(),
        lease,
    }
}

/// The next request, from the client's seeded choices (weights out of 100).
fn choose(rng: &mut StdRng, state: &mut ClientState) -> Request {
    let k = rng.gen_range(0..REGISTER_KEYS.len());
    let key = REGISTER_KEYS[k].to_string();
    let roll = rng.gen_range(0..100);
    let lease =
        (!state.leases.is_empty()).then(|| state.leases[rng.gen_range(0..state.leases.len())]);
    match (roll, lease) {
        (0..=17, _) => Request::Put {
            key,
            value: state.values.next(),
            lease: 0,
        },
        (18..=31, _) => Request::Get {
            key,
            serializable: false,
        },
        (32..=37, _) => Request::Get {
            key,
            serializable: true,
        },
        (38..=43, _) => Request::Range {
            prefix: PREFIX.to_string(),
            serializable: false,
        },
        (44..=47, _) => Request::Range {
            prefix: PREFIX.to_string(),
            serializable: true,
        },
        (48..=53, _) => Request::Delete { key },
        (54..=67, _) => {
            let seen = state.last_seen[k].clone();
            let expect = seen.as_ref().map(|kv| kv.value);
            // A compare on the value needs a value; an absent key compares mod_revision 0.
            let compare_mod_revision = (expect.is_none() || rng.gen_bool(0.5))
                .then(|| seen.as_ref().map_or(0, |kv| kv.mod_revision));
            Request::Cas {
                key,
                expect,
                compare_mod_revision,
                value: state.values.next(),
            }
        }
        (68..=79, Some(lease)) => lease_put(rng, state, lease),
        (80..=85, Some(id)) => Request::LeaseRevoke { id },
        (86..=91, Some(id)) => Request::LeaseKeepAlive { id },
        (68..=91, None) | (92..=99, _) if state.leases.len() < LEASES_PER_CLIENT => {
            Request::LeaseGrant {
                ttl_seconds: rng.gen_range(LEASE_TTL_SECONDS),
            }
        }
        _ => Request::Get {
            key,
            serializable: false,
        },
    }
}

/// Updates what the client knows from an answer.
fn learn(state: &mut ClientState, record: &Record) {
    let register = |key: &str| REGISTER_KEYS.iter().position(|k| *k == key);
    match (&record.request, &record.outcome) {
        (Request::Put { key, value, .. }, Outcome::Ok(Response::Put { revision, .. })) => {
            if let Some(k) = register(key) {
                state.last_seen[k] = Some(KeyValue {
                    key: key.clone(),
                    value: *value,
                    create_revision: 0,
                    mod_revision: *revision,
                    version: 0,
                    lease: 0,
                });
            }
        }
        (Request::Get { key, .. }, Outcome::Ok(Response::Range { kvs, .. })) => {
            if let Some(k) = register(key) {
                state.last_seen[k] = kvs.first().cloned();
            }
        }
        (Request::Delete { key }, Outcome::Ok(_)) => {
            if let Some(k) = register(key) {
                state.last_seen[k] = None;
            }
        }
        (
            Request::Cas { key, value, .. },
            Outcome::Ok(Response::Cas {
                succeeded,
                current,
                revision,
            }),
        ) => {
            if let Some(k) = register(key) {
                state.last_seen[k] = if *succeeded {
                    Some(KeyValue {
                        key: key.clone(),
                        value: *value,
                        create_revision: 0,
                        mod_revision: *revision,
                        version: 0,
                        lease: 0,
                    })
                } else {
                    current.clone()
                };
            }
        }
        (Request::LeaseGrant { .. }, Outcome::Ok(Response::LeaseGrant { id, .. })) => {
            state.leases.push(*id)
        }
        // Revoked, not found, or its outcome unknown: no longer ours to use in any case.
        (Request::LeaseRevoke { id }, _) => state.leases.retain(|lease| lease != id),
        (Request::LeaseKeepAlive { id }, Outcome::Ok(Response::LeaseKeepAlive { ttl: 0, .. })) => {
            state.leases.retain(|lease| lease != id)
        }
        // A put on an expired lease fails with "requested lease not found" (NotFound).
        (Request::Put { lease, .. }, Outcome::Failed(_)) if *lease != 0 => {
            state.leases.retain(|id| id != lease)
        }
        _ => {}
    }
}

/// Compactions and defragmentations until [`Control::stop`]. `clients[i]` talks to member
/// `i` only; the last one to every member.
pub async fn maintenance_loop(
    member_urls: Vec<String>,
    seed: u64,
    clock: Clock,
    control: Arc<Control>,
) -> TaskLog {
    let mut rng = StdRng::seed_from_u64(client_seed(seed, 1000));
    let mut log = TaskLog::default();
    let mut clients: Vec<Client> = Vec::new();
    for url in member_urls
        .iter()
        .chain(std::iter::once(&member_urls.join(",")))
    {
        let urls: Vec<String> = url.split(',').map(str::to_string).collect();
        match connect(&urls).await {
            Ok(client) => clients.push(client),
            Err(error) => {
                log.anomalies.push(error);
                return log;
            }
        }
    }
    let members = member_urls.len();
    let mut compacted = 0i64;
    let mut next_compaction = clock.now() + ms_to_ns(rng.gen_range(COMPACT_EVERY_MS));
    let mut last_defrag = clock.now();
    let mut defrag_interval = rng.gen_range(DEFRAG_EVERY_MS);
    while !control.stopping() {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = clock.now();
        if now >= next_compaction {
            let fast = control.compact_fast.load(Ordering::SeqCst);
            next_compaction = now
                + ms_to_ns(if fast {
                    COMPACT_FAST_MS
                } else {
                    rng.gen_range(COMPACT_EVERY_MS)
                });
            let watched = control
                .watch_progress
                .iter()
                .map(|progress| progress.load(Ordering::SeqCst))
                .min()
                .unwrap_or(0);
            let highest = control.highest_revision.load(Ordering::SeqCst);
            let target = watched.min(highest - COMPACT_KEEP_REVISIONS);
            if target > compacted {
                let request = Request::Compact {
                    revision: target,
                    physical: rng.gen_bool(0.5),
                };
                let record = execute(
                    &mut clients[members],
                    &clock,
                    Actor::Maintenance,
                    None,
                    request,
                    &mut log.anomalies,
                )
                .await;
                if matches!(record.outcome, Outcome::Ok(_)) {
                    compacted = target;
                }
                log.records.push(record);
            }
        }
        let forced = control.defrag_member.load(Ordering::SeqCst);
        let due = last_defrag
            + ms_to_ns(if forced >= 0 {
                DEFRAG_FAST_MS
            } else {
                defrag_interval
            });
        if now >= due {
            let member = if forced >= 0 {
                forced as usize
            } else {
                rng.gen_range(0..members)
            };
            defrag_interval = rng.gen_range(DEFRAG_EVERY_MS);
            let record = execute(
                &mut clients[member],
                &clock,
                Actor::Maintenance,
                Some(member),
                Request::Defrag { member },
                &mut log.anomalies,
            )
            .await;
            last_defrag = clock.now();
            log.records.push(record);
        }
    }
    log
}

fn ms_to_ns(ms: u64) -> u64 {
    ms * 1_000_000
}
