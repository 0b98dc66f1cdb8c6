//! Seeded randomized test: the store against a naive model that keeps every
//! change ever made as `(revision, key, (value, lease) or deletion)` and
//! answers a read at revision `r` by replaying the log up to `r`. Leases are
//! a set of ids; a lease's keys are the live keys whose lease is that id.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use capstan_proto::etcdserverpb::compare::{CompareResult, CompareTarget};
use capstan_proto::etcdserverpb::{
    request_op::Request, Compare, RangeRequest, RequestOp, TxnRequest,
};
use capstan_proto::mvccpb::KeyValue;

use crate::mvcc::key_range::KeyRange;
use crate::mvcc::test_support::*;
use crate::mvcc::{KvStore, MvccError, WriteRequest};

/// Knuth's MMIX linear congruential generator.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

const ALPHABET: &[u8] = b"abcd";

fn random_key(rng: &mut Lcg) -> String {
    let length = 1 + rng.below(2);
    (0..length)
        .map(|_| ALPHABET[rng.below(ALPHABET.len() as u64) as usize] as char)
        .collect()
}

/// A key range in request form: a single key, everything from a key, or an
/// interval (possibly empty or inverted).
/// Lease ids the test draws from.
const LEASE_IDS: i64 = 4;

fn random_lease_id(rng: &mut Lcg) -> i64 {
    1 + rng.below(LEASE_IDS as u64) as i64
}

fn random_range(rng: &mut Lcg) -> (String, String) {
    let key = random_key(rng);
    let range_end = match rng.below(4) {
        0 => String::new(),
        1 => "\0".to_string(),
        _ => random_key(rng),
    };
    (key, range_end)
}

/// A change: the new value and lease, or `None` for a deletion.
type Change = Option<(Bytes, i64)>;

#[derive(Default)]
struct Model {
    /// Every change, in apply order.
    log: Vec<(i64, Bytes, Change)>,
    current_revision: i64,
    last_compaction: i64,
    /// Leases granted and not revoked.
    leases: BTreeSet<i64>,
    /// Keys deleted by revokes so far.
    revoked_keys: usize,
}

impl Model {
    fn new() -> Self {
        Model {
            log: Vec::new(),
            current_revision: 1,
            last_compaction: -1,
            leases: BTreeSet::new(),
            revoked_keys: 0,
        }
    }

    /// Keys live at `revision`, replaying the log.
    fn state_at(&self, revision: i64) -> BTreeMap<Bytes, KeyValue> {
        let mut live: BTreeMap<Bytes, KeyValue> = BTreeMap::new();
        for (change_revision, key, value) in &self.log {
            if *change_revision > revision {
                break;
            }
            match value {
                Some((value, lease)) => {
                    let (create_revision, version) = match live.get(key) {
                        Some(previous) => (previous.create_revision, previous.version + 1),
                        None => (*change_revision, 1),
                    };
                    live.insert(
                        key.clone(),
                        KeyValue {
                            key: key.clone(),
                            create_revision,
                            mod_revision: *change_revision,
                            version,
                            value: value.clone(),
                            lease: *lease,
                        },
                    );
                }
                None => {
                    live.remove(key);
                }
            }
        }
        live
    }

    fn range(&self, key: &str, range_end: &str, revision: i64) -> Vec<KeyValue> {
        let range = KeyRange::new(&bytes(key), &bytes(range_end));
        self.state_at(revision)
            .into_values()
            .filter(|kv| range.contains(&kv.key))
            .collect()
    }

    /// Keys live at `revision` that carry `lease`, ascending.
    fn lease_keys(&self, lease: i64, revision: i64) -> Vec<Bytes> {
        self.state_at(revision)
            .into_values()
            .filter(|kv| kv.lease == lease)
            .map(|kv| kv.key)
            .collect()
    }
}

/// Applies a txn of plain puts and deletes to the model, in order, under
/// one revision; compares see the state at `start`.
struct ModelTxn<'m> {
    model: &'m mut Model,
    start: i64,
    changed: bool,
}

impl ModelTxn<'_> {
    fn run(&mut self, ops: &[ModelOp]) {
        for op in ops {
            match op {
                ModelOp::Put(key, value, lease) => {
                    let change = Some((bytes(value), *lease));
                    self.model.log.push((self.start + 1, bytes(key), change));
                    self.changed = true;
                }
                ModelOp::Delete(key, range_end) => {
                    for kv in self.model.range(key, range_end, self.start + 1) {
                        self.model.log.push((self.start + 1, kv.key, None));
                        self.changed = true;
                    }
                }
                ModelOp::Nested(compare, success, failure) => {
                    let branch = if compare.holds(self.model, self.start) {
                        success
                    } else {
                        failure
                    };
                    self.run(branch);
                }
            }
        }
    }
}

/// "key has this version" or "key has this value".
#[derive(Clone)]
enum ModelCompare {
    VersionEquals(String, i64),
    ValueEquals(String, String),
}

impl ModelCompare {
    fn holds(&self, model: &Model, revision: i64) -> bool {
        match self {
            ModelCompare::VersionEquals(key, version) => {
                let actual = model
                    .range(key, "", revision)
                    .first()
                    .map_or(0, |kv| kv.version);
                actual == *version
            }
            ModelCompare::ValueEquals(key, value) => model
                .range(key, "", revision)
                .first()
                .is_some_and(|kv| kv.value.as_ref() == value.as_bytes()),
        }
    }

    fn to_request(&self) -> Compare {
        match self {
            ModelCompare::VersionEquals(key, version) => {
                compare_number(key, CompareTarget::Version, CompareResult::Equal, *version)
            }
            ModelCompare::ValueEquals(key, value) => {
                compare_value(key, CompareResult::Equal, value)
            }
        }
    }

    fn random(rng: &mut Lcg, model: &Model) -> Self {
        let key = random_key(rng);
        let current = model.range(&key, "", model.current_revision);
        if rng.chance(50) {
            let version = current.first().map_or(0, |kv| kv.version) + rng.below(2) as i64;
            ModelCompare::VersionEquals(key, version)
        } else {
            let value = match current.first() {
                Some(kv) if rng.chance(70) => String::from_utf8_lossy(&kv.value).into_owned(),
                _ => format!("v{}", rng.below(5)),
            };
            ModelCompare::ValueEquals(key, value)
        }
    }
}

enum ModelOp {
    /// Key, value, lease (0 or one that exists when the write starts).
    Put(String, String, i64),
    Delete(String, String),
    Nested(ModelCompare, Vec<ModelOp>, Vec<ModelOp>),
}

impl ModelOp {
    fn to_request(&self) -> RequestOp {
        match self {
            ModelOp::Put(key, value, lease) => RequestOp {
                request: Some(Request::RequestPut(leased_put_request(key, value, *lease))),
            },
            ModelOp::Delete(key, range_end) => delete_op(key, range_end),
            ModelOp::Nested(compare, success, failure) => txn_op(TxnRequest {
                compare: vec![compare.to_request()],
                success: success.iter().map(ModelOp::to_request).collect(),
                failure: failure.iter().map(ModelOp::to_request).collect(),
            }),
        }
    }
}

fn random_value(rng: &mut Lcg, step: usize) -> String {
    format!("v{}-{step}", rng.below(5))
}

/// 0 most of the time, else an existing lease if there is one.
fn random_existing_lease(rng: &mut Lcg, model: &Model) -> i64 {
    if model.leases.is_empty() || !rng.chance(30) {
        return 0;
    }
    let index = rng.below(model.leases.len() as u64) as usize;
    model.leases.iter().nth(index).copied().unwrap_or(0)
}

fn random_put(rng: &mut Lcg, model: &Model, step: usize) -> ModelOp {
    let (key, value) = (random_key(rng), random_value(rng, step));
    ModelOp::Put(key, value, random_existing_lease(rng, model))
}

fn random_ops(rng: &mut Lcg, model: &Model, step: usize, depth: u32) -> Vec<ModelOp> {
    (0..rng.below(4))
        .map(|_| match rng.below(10) {
            0..=5 => random_put(rng, model, step),
            6..=8 => {
                let (key, range_end) = random_range(rng);
                ModelOp::Delete(key, range_end)
            }
            _ if depth > 0 => ModelOp::Nested(
                ModelCompare::random(rng, model),
                random_ops(rng, model, step, depth - 1),
                random_ops(rng, model, step, depth - 1),
            ),
            _ => random_put(rng, model, step),
        })
        .collect()
}

fn apply_both(store: &mut KvStore, model: &mut Model, rng: &mut Lcg, step: usize) {
    let start = model.current_revision;
    let mut model_txn = ModelTxn {
        model,
        start,
        changed: false,
    };
    match rng.below(12) {
        0..=3 => {
            let (key, value) = (random_key(rng), random_value(rng, step));
            let mut lease = random_existing_lease(rng, model_txn.model);
            if rng.chance(10) {
                // Possibly a lease that does not exist.
                lease = random_lease_id(rng);
            }
            let request = WriteRequest::Put(leased_put_request(&key, &value, lease));
            let result = store.apply(&request);
            if lease == 0 || model_txn.model.leases.contains(&lease) {
                assert!(result.is_ok(), "step {step}: {result:?}");
                model_txn.run(&[ModelOp::Put(key, value, lease)]);
            } else {
                assert_eq!(result.map(|_| ()), Err(MvccError::LeaseNotFound));
            }
        }
        10 => {
            let id = random_lease_id(rng);
            let result = store.apply(&grant_request(id, 5));
            if model_txn.model.leases.insert(id) {
                assert!(result.is_ok(), "step {step}: grant {id}");
            } else {
                assert_eq!(result.map(|_| ()), Err(MvccError::LeaseExists));
            }
        }
        11 => {
            let id = random_lease_id(rng);
            let result = store.apply(&revoke_request(id));
            if model_txn.model.leases.remove(&id) {
                assert!(result.is_ok(), "step {step}: revoke {id}");
                for key in model_txn.model.lease_keys(id, start) {
                    model_txn.model.log.push((start + 1, key, None));
                    model_txn.model.revoked_keys += 1;
                    model_txn.changed = true;
                }
            } else {
                assert_eq!(result.map(|_| ()), Err(MvccError::LeaseNotFound));
            }
        }
        4..=5 => {
            let (key, range_end) = random_range(rng);
            delete(store, &key, &range_end);
            model_txn.run(&[ModelOp::Delete(key, range_end)]);
        }
        6..=8 => {
            let compare = ModelCompare::random(rng, model_txn.model);
            let success = random_ops(rng, model_txn.model, step, 1);
            let failure = random_ops(rng, model_txn.model, step, 1);
            let expected_success = compare.holds(model_txn.model, start);
            let response = apply_txn(
                store,
                TxnRequest {
                    compare: vec![compare.to_request()],
                    success: success.iter().map(ModelOp::to_request).collect(),
                    failure: failure.iter().map(ModelOp::to_request).collect(),
                },
            );
            assert_eq!(response.succeeded, expected_success, "step {step}");
            model_txn.run(if expected_success { &success } else { &failure });
        }
        _ => {
            let floor = model_txn.model.last_compaction;
            let target = floor + 1 + rng.below((start - floor) as u64 + 2) as i64;
            let result = store.apply(&compaction_request(target));
            if target > start {
                assert_eq!(result.map(|_| ()), Err(MvccError::FutureRevision));
            } else {
                assert!(result.is_ok(), "step {step}: compaction at {target}");
                model_txn.model.last_compaction = target;
            }
        }
    }
    if model_txn.changed {
        model_txn.model.current_revision = start + 1;
    }
}

fn check_random_read(store: &KvStore, model: &Model, rng: &mut Lcg, step: usize) {
    let (key, range_end) = random_range(rng);
    let revision = rng.below(model.current_revision as u64 + 2) as i64;
    let mut request = RangeRequest {
        key: bytes(&key),
        range_end: bytes(&range_end),
        revision,
        ..RangeRequest::default()
    };
    if rng.chance(30) {
        request.limit = 1 + rng.below(3) as i64;
    }
    let result = store.range(&request);
    let context = format!("step {step}: {key:?}..{range_end:?} at {revision}");
    if revision > model.current_revision {
        assert_eq!(result, Err(MvccError::FutureRevision), "{context}");
        return;
    }
    let effective = if revision <= 0 {
        model.current_revision
    } else {
        revision
    };
    if effective < model.last_compaction {
        assert_eq!(result, Err(MvccError::Compacted), "{context}");
        return;
    }
    let mut expected = model.range(&key, &range_end, effective);
    let response = match result {
        Ok(response) => response,
        Err(error) => panic!("{context}: unexpected {error}"),
    };
    assert_eq!(response.count, expected.len() as i64, "{context}");
    let limit = request.limit as usize;
    let more = limit > 0 && expected.len() > limit;
    if more {
        expected.truncate(limit);
    }
    assert_eq!(response.more, more, "{context}");
    assert_eq!(response.kvs, expected, "{context}");
}

/// Every lease exists in the store exactly when in the model, with the
/// model's keys.
fn check_leases(store: &KvStore, model: &Model, step: usize) {
    let ids: Vec<i64> = model.leases.iter().copied().collect();
    assert_eq!(store.lease_ids(), ids, "step {step}");
    for id in 1..=LEASE_IDS {
        let expected = model
            .leases
            .contains(&id)
            .then(|| model.lease_keys(id, model.current_revision));
        let actual = store.lease(id).map(|lease| lease.keys);
        assert_eq!(actual, expected, "step {step}: lease {id}");
    }
}

fn run_seed(seed: u64, steps: usize) {
    let mut rng = Lcg(seed);
    let mut store = KvStore::new();
    let mut model = Model::new();
    let mut snapshots: Vec<(KvStore, i64, BTreeSet<i64>)> = Vec::new();
    for step in 0..steps {
        apply_both(&mut store, &mut model, &mut rng, step);
        assert_eq!(
            store.current_revision(),
            model.current_revision,
            "step {step}"
        );
        assert_eq!(
            store.key_count(),
            model.state_at(model.current_revision).len(),
            "step {step}"
        );
        for _ in 0..3 {
            check_random_read(&store, &model, &mut rng, step);
        }
        check_leases(&store, &model, step);
        if rng.chance(5) {
            snapshots.push((store.clone(), model.current_revision, model.leases.clone()));
        }
    }
    // The run must have exercised history, deletions and compaction.
    assert!(model.current_revision > steps as i64 / 2, "seed {seed}");
    assert!(model.last_compaction > 0, "seed {seed}");
    assert!(
        model.log.iter().any(|(_, _, value)| value.is_none()),
        "seed {seed}"
    );
    assert!(
        model
            .log
            .iter()
            .any(|(_, _, value)| matches!(value, Some((_, lease)) if *lease != 0)),
        "seed {seed}"
    );
    assert!(model.revoked_keys > 0, "seed {seed}");
    // Old snapshots still answer as of their own revision.
    for (snapshot, revision, leases) in &snapshots {
        let everything = snapshot.range(&range_request("\0", "\0")).expect("range");
        assert_eq!(everything.kvs, model.range("\0", "\0", *revision));
        let lease_ids: Vec<i64> = leases.iter().copied().collect();
        assert_eq!(snapshot.lease_ids(), lease_ids);
        for id in leases {
            let keys = snapshot.lease(*id).map(|lease| lease.keys);
            assert_eq!(keys, Some(model.lease_keys(*id, *revision)));
        }
    }
}

#[test]
fn store_matches_naive_model() {
    for seed in [1, 7, 42, 2024, 0xdead_beef] {
        run_seed(seed, 400);
    }
}
