//! The events one raft turn applied.

use capstan_proto::mvccpb::Event;

/// Events of consecutive revisions, ordered by revision; every revision in
/// `first_revision..=last_revision` that exists has all its events here.
#[derive(Debug)]
pub struct EventBatch {
    pub events: Vec<Event>,
    pub first_revision: i64,
    pub last_revision: i64,
    /// The store jumped to `last_revision` without events (a raft snapshot was installed):
    /// every live watcher reads what it missed from history instead.
    pub resync: bool,
}

pub fn event_revision(event: &Event) -> i64 {
    event.kv.as_ref().map_or(0, |kv| kv.mod_revision)
}

impl EventBatch {
    /// The store was replaced by a snapshot at `store_revision`: the revisions after
    /// `from_revision - 1` were never delivered as events.
    pub fn resync(from_revision: i64, store_revision: i64) -> EventBatch {
        EventBatch {
            events: Vec::new(),
            first_revision: from_revision,
            last_revision: store_revision,
            resync: true,
        }
    }

    /// `events` must be non-empty and in revision order; `store_revision` is the store's
    /// revision after applying them.
    pub fn new(events: Vec<Event>, store_revision: i64) -> EventBatch {
        let first_revision = events.first().map_or(store_revision, event_revision);
        assert!(
            events
                .windows(2)
                .all(|pair| event_revision(&pair[0]) <= event_revision(&pair[1])),
            "event batch out of revision order"
        );
        EventBatch {
            events,
            first_revision,
            last_revision: store_revision,
            resync: false,
        }
    }
}
