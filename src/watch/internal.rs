//! A watcher owned by server code instead of a client's Watch stream: the lock and election
//! services wait on it for a key's deletion or a leader's next value.
//!
//! It is an ordinary hub stream with one watcher, so it gets everything a client watcher gets
//! (live delivery, catch-up from history when it falls behind, cancellation by compaction);
//! the stream is closed when the `InternalWatch` is dropped, however the waiting call ends.

use super::hub::{StreamId, WatchHub};
use super::outbox::Outbox;
use crate::mvcc::KvStore;
use capstan_proto::etcdserverpb::{WatchCreateRequest, WatchResponse};
use std::cell::RefCell;
use std::rc::Rc;

pub struct InternalWatch<'a> {
    hub: &'a RefCell<WatchHub>,
    stream: StreamId,
    outbox: Rc<Outbox>,
}

impl<'a> InternalWatch<'a> {
    /// Registers one watcher for `request` on `hub`; `view` is the newest read view.
    pub fn open(
        hub: &'a RefCell<WatchHub>,
        request: &WatchCreateRequest,
        view: &KvStore,
    ) -> InternalWatch<'a> {
        let mut hub_state = hub.borrow_mut();
        let (stream, outbox) = hub_state.open_stream();
        hub_state.create(stream, request, view);
        InternalWatch {
            hub,
            stream,
            outbox,
        }
    }

    /// The next response with events, in revision order. `None` when the watcher ended (it was
    /// refused or cancelled, e.g. because compaction removed history it still needed).
    pub async fn next_events(&mut self) -> Option<WatchResponse> {
        loop {
            let response = self.outbox.pop().await?;
            if response.canceled {
                return None;
            }
            if !response.events.is_empty() {
                return Some(response);
            }
            // The "created" answer and progress notifications carry no events.
        }
    }
}

impl Drop for InternalWatch<'_> {
    fn drop(&mut self) {
        self.hub.borrow_mut().close_stream(self.stream);
    }
}
