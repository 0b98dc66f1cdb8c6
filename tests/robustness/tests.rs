//! The campaign's own checks on hand-made histories: each watch guarantee and replay rule
//! rejects the history that breaks it, and accepts the one that keeps it.

use super::checks::{self, Violations};
use super::history::{Actor, KeyValue, Outcome, Record, Request, Response};
use super::watch::{
    check_watcher, merge, EventKind, WatchEvent, WatchResponseRecord, WatchSession, WatcherLog,
};
use std::collections::{BTreeMap, BTreeSet};

fn kv(key: &str, value: u64, create: i64, revision: i64, version: i64) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value,
        create_revision: create,
        mod_revision: revision,
        version,
        lease: 0,
    }
}

fn put(key: &str, value: u64, create: i64, revision: i64, version: i64) -> WatchEvent {
    WatchEvent {
        kind: EventKind::Put,
        kv: kv(key, value, create, revision, version),
    }
}

fn delete(key: &str, revision: i64) -> WatchEvent {
    WatchEvent {
        kind: EventKind::Delete,
        kv: kv(key, 0, 0, revision, 0),
    }
}

fn response(events: Vec<WatchEvent>) -> WatchResponseRecord {
    WatchResponseRecord {
        received: 0,
        header_revision: events.iter().map(WatchEvent::revision).max().unwrap_or(0),
        events,
        canceled: false,
        compact_revision: 0,
        cancel_reason: String::new(),
    }
}

fn watcher(id: usize, sessions: Vec<(i64, Vec<WatchResponseRecord>)>) -> WatcherLog {
    WatcherLog {
        id,
        member: Some(id),
        sessions: sessions
            .into_iter()
            .map(|(start_revision, responses)| WatchSession {
                start_revision,
                started: 0,
                responses,
                end: String::new(),
            })
            .collect(),
        malformed: 0,
    }
}

/// Revisions 2..=4 on the prefix: put a, put b, delete a + put c (one txn-like revision).
fn history() -> Vec<WatchEvent> {
    vec![
        put("rob/a", 1, 2, 2, 1),
        put("rob/b", 2, 3, 3, 1),
        delete("rob/a", 4),
        put("rob/c", 3, 4, 4, 1),
    ]
}

fn complete() -> WatcherLog {
    let h = history();
    watcher(
        0,
        vec![(
            1,
            vec![response(h[0..1].to_vec()), response(h[1..4].to_vec())],
        )],
    )
}

fn judge(candidate: &WatcherLog) -> Vec<String> {
    let reference = complete();
    let merged = merge(&[reference, candidate.clone()]);
    let expected: BTreeSet<i64> = merged.events.keys().copied().collect();
    let mut found = merged.violations;
    found.extend(check_watcher(candidate, &merged.events, &expected, 4));
    found
}

fn assert_found(found: &[String], what: &str) {
    assert!(
        found.iter().any(|text| text.contains(what)),
        "expected a violation mentioning {what:?}, got {found:#?}"
    );
}

#[test]
fn a_complete_watcher_passes() {
    assert!(judge(&complete()).is_empty(), "{:#?}", judge(&complete()));
}

#[test]
fn reconnecting_from_the_next_revision_passes() {
    let h = history();
    let candidate = watcher(
        1,
        vec![
            (1, vec![response(h[0..2].to_vec())]),
            (4, vec![response(h[2..4].to_vec())]),
        ],
    );
    assert!(judge(&candidate).is_empty(), "{:#?}", judge(&candidate));
}

#[test]
fn a_missed_revision_is_a_gap() {
    let h = history();
    let candidate = watcher(
        1,
        vec![(
            1,
            vec![response(h[0..1].to_vec()), response(h[2..4].to_vec())],
        )],
    );
    assert_found(&judge(&candidate), "gap");
}

#[test]
fn a_gap_excused_by_compaction_passes() {
    let h = history();
    let mut canceled = response(Vec::new());
    canceled.canceled = true;
    canceled.compact_revision = 4;
    let candidate = watcher(
        1,
        vec![(1, vec![canceled]), (4, vec![response(h[2..4].to_vec())])],
    );
    assert!(judge(&candidate).is_empty(), "{:#?}", judge(&candidate));
}

#[test]
fn a_duplicate_after_reconnecting_is_caught() {
    let h = history();
    let candidate = watcher(
        1,
        vec![
            (1, vec![response(h[0..2].to_vec())]),
            (3, vec![response(h[1..4].to_vec())]),
        ],
    );
    let found = judge(&candidate);
    assert_found(&found, "order");
    assert_found(&found, "duplicate");
}

#[test]
fn a_revision_split_over_two_responses_is_caught() {
    let h = history();
    let candidate = watcher(
        1,
        vec![(
            1,
            vec![response(h[0..3].to_vec()), response(h[3..4].to_vec())],
        )],
    );
    assert_found(&judge(&candidate), "split");
}

#[test]
fn a_different_value_is_caught() {
    let mut h = history();
    h[1].kv.value = 99;
    let candidate = watcher(1, vec![(1, vec![response(h)])]);
    assert_found(&judge(&candidate), "disagree");
}

#[test]
fn a_watcher_that_stops_early_is_caught() {
    let h = history();
    let candidate = watcher(1, vec![(1, vec![response(h[0..2].to_vec())])]);
    assert_found(&judge(&candidate), "stalled");
}

fn read(revision: i64, kvs: Vec<KeyValue>, prefix: bool) -> Record {
    Record {
        actor: Actor::Client(0),
        member: Some(0),
        call: 0,
        ret: 1,
        request: if prefix {
            Request::Range {
                prefix: "rob/".to_string(),
                serializable: true,
            }
        } else {
            Request::Get {
                key: "rob/b".to_string(),
                serializable: true,
            }
        },
        outcome: Outcome::Ok(Response::Range { kvs, revision }),
    }
}

fn replay(records: &[Record]) -> Vec<String> {
    let events: BTreeMap<i64, Vec<WatchEvent>> =
        history()
            .into_iter()
            .fold(BTreeMap::new(), |mut map, event| {
                map.entry(event.revision())
                    .or_insert_with(Vec::new)
                    .push(event);
                map
            });
    let mut violations = Violations::default();
    checks::replay(records, &events, &mut violations);
    violations.into_texts()
}

#[test]
fn reads_at_their_revision_pass_the_replay() {
    let records = [
        read(1, vec![], true),
        read(
            3,
            vec![kv("rob/a", 1, 2, 2, 1), kv("rob/b", 2, 3, 3, 1)],
            true,
        ),
        read(
            9,
            vec![kv("rob/b", 2, 3, 3, 1), kv("rob/c", 3, 4, 4, 1)],
            true,
        ),
        read(2, vec![], false),
        read(3, vec![kv("rob/b", 2, 3, 3, 1)], false),
    ];
    assert!(replay(&records).is_empty(), "{:#?}", replay(&records));
}

#[test]
fn a_read_that_mixes_revisions_is_caught() {
    // Revision 3's b with revision 4's delete of a missing: a torn read.
    let records = [read(
        4,
        vec![
            kv("rob/a", 1, 2, 2, 1),
            kv("rob/b", 2, 3, 3, 1),
            kv("rob/c", 3, 4, 4, 1),
        ],
        true,
    )];
    assert_found(&replay(&records), "does not match");
}

#[test]
fn a_stale_serializable_read_claiming_a_newer_revision_is_caught() {
    let records = [read(3, vec![], false)];
    assert_found(&replay(&records), "does not match");
}

#[test]
fn a_put_event_with_a_wrong_version_is_caught() {
    let records = vec![read(1, vec![], true)];
    let mut events: BTreeMap<i64, Vec<WatchEvent>> = BTreeMap::new();
    events.insert(2, vec![put("rob/a", 1, 2, 2, 1)]);
    events.insert(3, vec![put("rob/a", 2, 2, 3, 3)]);
    let mut violations = Violations::default();
    checks::replay(&records, &events, &mut violations);
    assert_found(&violations.into_texts(), "contradicts");
}

#[test]
fn consecutive_seeds_cover_every_fault_kind() {
    use super::faults::{plan, CAPSTAN_FAULTS, PROCESS_FAULTS};
    for kinds in [&CAPSTAN_FAULTS[..], &PROCESS_FAULTS[..]] {
        for rounds in [3, 4, 5] {
            let seeds = kinds.len().div_ceil(rounds) as u64;
            for base in [0u64, 5, 6, 1_000_003] {
                let covered: BTreeSet<_> = (base..base + seeds)
                    .flat_map(|seed| plan(seed, rounds, kinds, 3))
                    .map(|fault| fault.kind)
                    .collect();
                assert_eq!(covered.len(), kinds.len(), "base {base}, {rounds} rounds");
            }
        }
    }
}

#[test]
#[ignore = "prints which seeds arm which failpoint"]
fn print_failpoint_seeds() {
    use super::faults::{plan, CAPSTAN_FAULTS};
    for seed in 0..3000u64 {
        for fault in plan(seed, 3, &CAPSTAN_FAULTS, 3) {
            if let Some(failpoint) = fault.failpoint {
                println!("seed {seed}: {}", failpoint.env_value());
            }
        }
    }
}

#[test]
fn the_campaign_arms_every_failpoint_etcd_robustness_has_an_equivalent_of() {
    const REQUIRED: [&str; 21] = [
        "walBeforeSync",
        "walAfterSync",
        "raftBeforeSave",
        "raftAfterSave",
        "raftAfterWALRelease",
        "storeBeforeCommit",
        "storeBeforeMetaWrite",
        "storeAfterCommit",
        "checkpointBeforeCommit",
        "checkpointAfterCommit",
        "compactBeforeCommitBatch",
        "compactAfterCommitBatch",
        "raftBeforeSaveSnap",
        "raftAfterSaveSnap",
        "snapBeforeRename",
        "snapBeforeRelease",
        "raftBeforeApplySnap",
        "raftAfterApplySnap",
        "defragBeforeCopy",
        "defragBeforeRename",
        "replaceBeforeRename",
    ];
    for name in REQUIRED {
        assert!(
            super::faults::FAILPOINTS.contains(&name),
            "the server no longer defines failpoint {name}"
        );
    }
    for name in super::faults::LOSE_UNSYNCED_FAILPOINTS {
        assert!(super::faults::FAILPOINTS.contains(&name), "{name}");
    }
}
