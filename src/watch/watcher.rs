//! One watcher: what it watches, which events it wants, and where it is in the history.

use super::outbox::Outbox;
use crate::mvcc::KeyRange;
use capstan_proto::etcdserverpb::watch_create_request::FilterType;
use capstan_proto::etcdserverpb::WatchCreateRequest;
use capstan_proto::mvccpb::event::EventType;
use capstan_proto::mvccpb::Event;
use std::rc::Rc;

/// Where a watcher is relative to the hub's live stream of events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    /// Fed by live batches; events below `min_revision` (a start revision in the future, or
    /// "now" while batches are still in flight) are skipped.
    Live { min_revision: i64 },
    /// Fed from history, starting at `next_revision`.
    CatchingUp { next_revision: i64 },
}

pub struct Watcher {
    pub watch_id: i64,
    pub keys: KeyRange,
    pub prev_kv: bool,
    pub no_put: bool,
    pub no_delete: bool,
    pub fragment: bool,
    pub progress_notify: bool,
    pub position: Position,
    /// An event response went out since the last progress notification.
    pub sent_since_progress: bool,
    pub outbox: Rc<Outbox>,
}

impl Watcher {
    pub fn new(
        watch_id: i64,
        request: &WatchCreateRequest,
        keys: KeyRange,
        position: Position,
        outbox: Rc<Outbox>,
    ) -> Watcher {
        let has_filter = |filter: FilterType| request.filters.contains(&(filter as i32));
        Watcher {
            watch_id,
            keys,
            prev_kv: request.prev_kv,
            no_put: has_filter(FilterType::Noput),
            no_delete: has_filter(FilterType::Nodelete),
            fragment: request.fragment,
            progress_notify: request.progress_notify,
            position,
            sent_since_progress: false,
            outbox,
        }
    }

    /// The event as this watcher should see it, or `None` if its filters drop it.
    pub fn shape(&self, event: &Event) -> Option<Event> {
        let is_put = event.r#type == EventType::Put as i32;
        if (is_put && self.no_put) || (!is_put && self.no_delete) {
            return None;
        }
        let mut shaped = event.clone();
        if !self.prev_kv {
            shaped.prev_kv = None;
        }
        Some(shaped)
    }
}
