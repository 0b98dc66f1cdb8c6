//! The checks judge real histories, so each run also proves they are not vacuous on its own
//! data: a copy of the history with one planted fault must be rejected by the check meant to
//! catch it (a stale read by the linearizability checker and by the replay, a lost write by the
//! write check, a dropped watch response by the watch check).

use super::checks::{self, Violations};
use super::history::{KeyValue, Outcome, Record, Request, Response};
use super::watch::{self, WatcherLog};
use crate::linearizability::{self, FailureKind};
use std::collections::{BTreeMap, BTreeSet};

/// Search budget for the planted stale read (the history is the run's own).
const BUDGET: u64 = 10_000_000;

/// `Err` naming every planted fault that went unnoticed.
pub fn planted_faults_are_caught(
    records: &[Record],
    events: &BTreeMap<i64, Vec<watch::WatchEvent>>,
    expected: &BTreeSet<i64>,
    watchers: &[WatcherLog],
    end_revision: i64,
) -> Result<(), String> {
    let mut missed = Vec::new();
    if let Some(text) = stale_read_missed(records, events) {
        missed.push(text);
    }
    if let Some(text) = lost_write_missed(records, events, end_revision) {
        missed.push(text);
    }
    if let Some(text) = watch_gap_missed(watchers, events, expected, end_revision) {
        missed.push(text);
    }
    if missed.is_empty() {
        Ok(())
    } else {
        Err(missed.join("\n"))
    }
}

fn acknowledged_write(record: &Record) -> Option<(&str, KeyValue)> {
    let (key, value) = record.request.written()?;
    let revision = match &record.outcome {
        Outcome::Ok(Response::Put { revision, .. })
        | Outcome::Ok(Response::Cas {
            succeeded: true,
            revision,
            ..
        }) => *revision,
        _ => return None,
    };
    Some((
        key,
        KeyValue {
            key: key.to_string(),
            value,
            create_revision: 0,
            mod_revision: revision,
            version: 0,
            lease: 0,
        },
    ))
}

/// The latest linearizable get of a register key that follows two acknowledged writes of it,
/// made to return the older one: both the linearizability checker and the replay must object.
fn stale_read_missed(
    records: &[Record],
    events: &BTreeMap<i64, Vec<watch::WatchEvent>>,
) -> Option<String> {
    let writes: Vec<(usize, &str, KeyValue)> = records
        .iter()
        .enumerate()
        .filter_map(|(i, record)| acknowledged_write(record).map(|(key, kv)| (i, key, kv)))
        .collect();
    let planted = records.iter().enumerate().rev().find_map(|(r, read)| {
        let Request::Get {
            key,
            serializable: false,
        } = &read.request
        else {
            return None;
        };
        if !matches!(read.outcome, Outcome::Ok(Response::Range { .. })) {
            return None;
        }
        writes.iter().find_map(|(old, old_key, old_kv)| {
            let replaced = writes.iter().any(|(newer, newer_key, _)| {
                newer_key == old_key
                    && records[*newer].call > records[*old].ret
                    && records[*newer].ret < read.call
            });
            (old_key == key && replaced && records[*old].ret < read.call)
                .then(|| (r, old_kv.clone()))
        })
    });
    let Some((r, old_kv)) = planted else {
        return Some(
            "no read followed two acknowledged writes of its key: nothing to plant".into(),
        );
    };
    let mut corrupted = records.to_vec();
    if let Outcome::Ok(Response::Range { kvs, .. }) = &mut corrupted[r].outcome {
        // What the history holds for that value (create revision, version), as a stale read
        // would return it.
        let full = events
            .get(&old_kv.mod_revision)
            .and_then(|group| group.iter().find(|event| event.kv.key == old_kv.key))
            .map_or(old_kv.clone(), |event| event.kv.clone());
        *kvs = vec![full];
    }
    let mut missed = Vec::new();
    let ops = checks::register_ops(&corrupted);
    match linearizability::check(&ops, BUDGET) {
        Err(failure) if failure.kind == FailureKind::NotLinearizable => {}
        Err(failure) if failure.kind == FailureKind::Budget => {}
        other => missed.push(format!(
            "the linearizability checker accepted a stale read planted at {}: {:?}",
            corrupted[r].describe(),
            other.map(|summary| summary.ops)
        )),
    }
    let mut violations = Violations::default();
    checks::replay(&corrupted, events, &mut violations);
    if violations.into_texts().is_empty() {
        missed.push(format!(
            "the replay accepted a stale read planted at {}",
            corrupted[r].describe()
        ));
    }
    (!missed.is_empty()).then(|| missed.join("\n"))
}

/// An acknowledged put whose value is changed in the record: the write check must miss it in
/// the history.
fn lost_write_missed(
    records: &[Record],
    events: &BTreeMap<i64, Vec<watch::WatchEvent>>,
    end_revision: i64,
) -> Option<String> {
    let Some(index) = records.iter().position(|record| {
        matches!(record.request, Request::Put { .. })
            && matches!(record.outcome, Outcome::Ok(Response::Put { .. }))
    }) else {
        return Some("no acknowledged put: nothing to plant".to_string());
    };
    let mut corrupted = records.to_vec();
    if let Request::Put { value, .. } = &mut corrupted[index].request {
        *value = value.wrapping_add(1 << 40);
    }
    let mut violations = Violations::default();
    checks::check_writes(&corrupted, events, end_revision, &mut violations);
    let found = violations
        .into_texts()
        .iter()
        .any(|text| text.contains("acknowledged write missing"));
    (!found).then(|| {
        format!(
            "the write check accepted an acknowledged put that is not in the history: {}",
            corrupted[index].describe()
        )
    })
}

/// One watcher's first response with events is removed: the watch check must see a gap.
fn watch_gap_missed(
    watchers: &[WatcherLog],
    events: &BTreeMap<i64, Vec<watch::WatchEvent>>,
    expected: &BTreeSet<i64>,
    end_revision: i64,
) -> Option<String> {
    let mut watcher = watchers.first()?.clone();
    let dropped = watcher.sessions.iter_mut().find_map(|session| {
        let at = session
            .responses
            .iter()
            .position(|response| !response.events.is_empty())?;
        // Keep a later response, so the gap is inside what the watcher received.
        let later = session.responses[at + 1..]
            .iter()
            .any(|response| !response.events.is_empty());
        later.then(|| session.responses.remove(at))
    });
    let dropped = dropped?;
    let found = watch::check_watcher(&watcher, events, expected, end_revision)
        .iter()
        .any(|text| text.contains("gap"));
    (!found).then(|| {
        format!(
            "the watch check accepted a dropped response [{}]",
            watch::list(&dropped.events)
        )
    })
}
