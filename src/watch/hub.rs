//! One shard's watchers: creation and cancellation, live delivery of event batches, catch-up
//! from history, and progress notifications.

use super::batch::{event_revision, EventBatch};
use super::outbox::Outbox;
use super::watcher::{Position, Watcher};
use crate::mvcc::KeyRange;
use crate::mvcc::KvStore;
use crate::raft::RaftStatus;
use bytes::Bytes;
use capstan_proto::etcdserverpb::{ResponseHeader, WatchCreateRequest, WatchResponse};
use capstan_proto::mvccpb::Event;
use prost::Message;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;
use std::rc::Rc;
use std::sync::Arc;

/// Catching-up watchers served in one catch-up step (etcd syncs at most 512 per round).
pub const CATCH_UP_WATCHERS_PER_STEP: usize = 512;
/// Revisions of history read for one watcher in one catch-up step.
pub const CATCH_UP_REVISIONS_PER_STEP: i64 = 256;
/// etcd's reason for a client-chosen watch id already in use on the stream.
pub const DUPLICATE_WATCH_ID: &str = "mvcc: duplicate watch ID provided on the WatchStream";
/// etcd's reason for a watch whose `range_end` is not after its key.
pub const EMPTY_WATCH_RANGE: &str = "mvcc: watcher range is empty";

pub type StreamId = u64;
type WatcherKey = (StreamId, i64);

/// What a hub needs to build responses.
pub struct HubConfig {
    pub cluster_id: u64,
    pub member_id: u64,
    pub raft_status: Arc<RaftStatus>,
    /// Event responses larger than this are split when the watcher asked for fragments
    /// (etcd: `--max-request-bytes` plus 512 KiB).
    pub fragment_bytes: usize,
}

impl HubConfig {
    fn header(&self, revision: i64) -> ResponseHeader {
        ResponseHeader {
            cluster_id: self.cluster_id,
            member_id: self.member_id,
            revision,
            raft_term: self.raft_status.term(),
        }
    }
}

struct StreamState {
    outbox: Rc<Outbox>,
    watch_ids: BTreeSet<i64>,
    next_auto_id: i64,
}

pub struct WatchHub {
    config: HubConfig,
    streams: HashMap<StreamId, StreamState>,
    next_stream_id: StreamId,
    watchers: HashMap<WatcherKey, Watcher>,
    /// Index: single-key watchers by key.
    single_keys: HashMap<Bytes, Vec<WatcherKey>>,
    /// Index: range watchers by start key, with their (exclusive, optional) end.
    spans: BTreeMap<Bytes, Vec<(Option<Bytes>, WatcherKey)>>,
    catching_up: BTreeSet<WatcherKey>,
    /// The last catching-up watcher served, so every step starts after it (no starvation).
    catch_up_cursor: Option<WatcherKey>,
    /// Every event with a revision up to this one has been handed to live watchers.
    delivered_revision: i64,
}

impl WatchHub {
    /// A hub whose live stream starts after `revision` (the published view's revision).
    pub fn new(config: HubConfig, revision: i64) -> WatchHub {
        WatchHub {
            config,
            streams: HashMap::new(),
            next_stream_id: 0,
            watchers: HashMap::new(),
            single_keys: HashMap::new(),
            spans: BTreeMap::new(),
            catching_up: BTreeSet::new(),
            catch_up_cursor: None,
            delivered_revision: revision,
        }
    }

    fn header(&self, revision: i64) -> ResponseHeader {
        self.config.header(revision)
    }

    /// This shard's part of the watcher gauges (`etcd_debugging_mvcc_watcher_total`, ...).
    fn publish_gauges(&self) {
        use crate::metrics::Gauge;
        crate::metrics::with(|metrics| {
            metrics
                .gauge(Gauge::Watchers)
                .set(self.watchers.len() as i64);
            metrics
                .gauge(Gauge::SlowWatchers)
                .set(self.catching_up.len() as i64);
            metrics
                .gauge(Gauge::WatchStreams)
                .set(self.streams.len() as i64);
        });
    }

    pub fn has_catching_up(&self) -> bool {
        !self.catching_up.is_empty()
    }

    pub fn open_stream(&mut self) -> (StreamId, Rc<Outbox>) {
        let id = self.next_stream_id;
        self.next_stream_id += 1;
        let outbox = Rc::new(Outbox::default());
        self.streams.insert(
            id,
            StreamState {
                outbox: outbox.clone(),
                watch_ids: BTreeSet::new(),
                next_auto_id: 0,
            },
        );
        self.publish_gauges();
        (id, outbox)
    }

    pub fn close_stream(&mut self, stream: StreamId) {
        let Some(state) = self.streams.remove(&stream) else {
            return;
        };
        for watch_id in state.watch_ids {
            self.remove_watcher((stream, watch_id));
        }
        state.outbox.close();
        self.publish_gauges();
    }

    fn index_insert(&mut self, key: WatcherKey, keys: &KeyRange) {
        match keys {
            KeyRange::Single(single) => self
                .single_keys
                .entry(single.clone())
                .or_default()
                .push(key),
            KeyRange::Span { start, end } => self
                .spans
                .entry(start.clone())
                .or_default()
                .push((end.clone(), key)),
        }
    }

    fn remove_watcher(&mut self, key: WatcherKey) -> Option<Watcher> {
        let watcher = self.watchers.remove(&key)?;
        self.catching_up.remove(&key);
        match &watcher.keys {
            KeyRange::Single(single) => {
                if let Some(list) = self.single_keys.get_mut(single) {
                    list.retain(|entry| *entry != key);
                    if list.is_empty() {
                        self.single_keys.remove(single);
                    }
                }
            }
            KeyRange::Span { start, .. } => {
                if let Some(list) = self.spans.get_mut(start) {
                    list.retain(|(_, entry)| *entry != key);
                    if list.is_empty() {
                        self.spans.remove(start);
                    }
                }
            }
        }
        self.publish_gauges();
        Some(watcher)
    }

    /// Watchers whose keys include `key`, read straight from the index (no copy per event).
    fn matching<'a>(&'a self, key: &'a [u8]) -> impl Iterator<Item = WatcherKey> + 'a {
        let single = self.single_keys.get(key).into_iter().flatten().copied();
        let spans = self
            .spans
            .range::<[u8], _>((Bound::Unbounded, Bound::Included(key)))
            .flat_map(|(_, list)| list.iter())
            .filter(move |(end, _)| end.as_ref().is_none_or(|end| key < end.as_ref()))
            .map(|(_, watcher)| *watcher);
        single.chain(spans)
    }

    /// Handles a create request on `stream`, answering on the stream's outbox.
    pub fn create(&mut self, stream: StreamId, request: &WatchCreateRequest, view: &KvStore) {
        let header = self.header(view.current_revision());
        let Some(state) = self.streams.get_mut(&stream) else {
            return;
        };
        let refuse = |reason: &str| WatchResponse {
            header: Some(header),
            watch_id: -1,
            created: true,
            canceled: true,
            cancel_reason: reason.to_string(),
            ..WatchResponse::default()
        };
        let keys = KeyRange::new(&request.key, &request.range_end);
        if keys.is_empty() {
            state.outbox.push(refuse(EMPTY_WATCH_RANGE));
            return;
        }
        let watch_id = if request.watch_id == 0 {
            while state.watch_ids.contains(&state.next_auto_id) {
                state.next_auto_id += 1;
            }
            state.next_auto_id += 1;
            state.next_auto_id - 1
        } else if state.watch_ids.contains(&request.watch_id) {
            state.outbox.push(refuse(DUPLICATE_WATCH_ID));
            return;
        } else {
            request.watch_id
        };
        let outbox = state.outbox.clone();
        outbox.push(WatchResponse {
            header: Some(header),
            watch_id,
            created: true,
            ..WatchResponse::default()
        });
        let compact_revision = view.compact_revision();
        let start = request.start_revision;
        if start > 0 && start < compact_revision {
            outbox.push(WatchResponse {
                header: Some(header),
                watch_id,
                canceled: true,
                compact_revision,
                ..WatchResponse::default()
            });
            // etcd keeps the id registered until the client cancels it.
            state.watch_ids.insert(watch_id);
            return;
        }
        let position = if start <= 0 {
            Position::Live {
                min_revision: view.current_revision() + 1,
            }
        } else if start <= self.delivered_revision {
            Position::CatchingUp {
                next_revision: start,
            }
        } else {
            Position::Live {
                min_revision: start,
            }
        };
        state.watch_ids.insert(watch_id);
        let key = (stream, watch_id);
        self.index_insert(key, &keys);
        if matches!(position, Position::CatchingUp { .. }) {
            self.catching_up.insert(key);
        }
        self.watchers
            .insert(key, Watcher::new(watch_id, request, keys, position, outbox));
        self.publish_gauges();
    }

    /// Handles a cancel request: etcd answers only when the id is registered on the stream
    /// (including watchers already cancelled by compaction, whose ids stay registered until the
    /// client cancels them).
    pub fn cancel(&mut self, stream: StreamId, watch_id: i64, view: &KvStore) {
        let header = self.header(view.current_revision());
        let Some(state) = self.streams.get_mut(&stream) else {
            return;
        };
        if !state.watch_ids.remove(&watch_id) {
            return;
        }
        self.remove_watcher((stream, watch_id));
        if let Some(state) = self.streams.get(&stream) {
            state.outbox.push(WatchResponse {
                header: Some(header),
                watch_id,
                canceled: true,
                ..WatchResponse::default()
            });
        }
    }

    /// Answers a progress request with `watch_id = -1` when every watcher of the stream is on
    /// the live path: then no event at or below the header's revision is still to come.
    pub fn request_progress(&mut self, stream: StreamId) {
        let Some(state) = self.streams.get(&stream) else {
            return;
        };
        let all_live = state.watch_ids.iter().all(|watch_id| {
            self.watchers
                .get(&(stream, *watch_id))
                .is_none_or(|watcher| matches!(watcher.position, Position::Live { .. }))
        });
        if all_live {
            state.outbox.push(WatchResponse {
                header: Some(self.header(self.delivered_revision)),
                watch_id: -1,
                ..WatchResponse::default()
            });
        }
    }

    /// Periodic progress notification for live watchers that asked for it and were sent no
    /// events since the last one.
    pub fn progress_tick(&mut self) {
        let header = self.header(self.delivered_revision);
        for watcher in self.watchers.values_mut() {
            if !watcher.progress_notify || !matches!(watcher.position, Position::Live { .. }) {
                continue;
            }
            // Like etcd's non-blocking send: a stream that is not being read gets no more.
            if !watcher.sent_since_progress && watcher.outbox.is_draining() {
                watcher.outbox.push(WatchResponse {
                    header: Some(header),
                    watch_id: watcher.watch_id,
                    ..WatchResponse::default()
                });
            }
            watcher.sent_since_progress = false;
        }
    }

    /// Hands one applied batch to the live watchers. A watcher whose stream has no room
    /// switches to catching up from the first revision it has not been sent.
    pub fn deliver(&mut self, batch: &EventBatch) {
        if batch.last_revision <= self.delivered_revision {
            return;
        }
        let previous = self.delivered_revision;
        if batch.resync {
            self.catch_up_all_live(previous + 1);
            self.delivered_revision = batch.last_revision;
            return;
        }
        let mut pending: HashMap<WatcherKey, Vec<Event>> = HashMap::new();
        for event in &batch.events {
            let Some(kv) = &event.kv else {
                continue;
            };
            let revision = kv.mod_revision;
            for key in self.matching(&kv.key) {
                let Some(watcher) = self.watchers.get(&key) else {
                    continue;
                };
                let Position::Live { min_revision } = watcher.position else {
                    continue;
                };
                if revision < min_revision {
                    continue;
                }
                if let Some(shaped) = watcher.shape(event) {
                    pending.entry(key).or_default().push(shaped);
                }
            }
        }
        let header = self.header(batch.last_revision);
        for (key, events) in pending {
            let Some(watcher) = self.watchers.get_mut(&key) else {
                continue;
            };
            let response = WatchResponse {
                header: Some(header),
                watch_id: watcher.watch_id,
                events,
                ..WatchResponse::default()
            };
            if watcher.outbox.has_room_for(response.encoded_len()) {
                push_fragmented(watcher, response, self.config.fragment_bytes);
            } else {
                let Position::Live { min_revision } = watcher.position else {
                    continue;
                };
                watcher.position = Position::CatchingUp {
                    next_revision: min_revision.max(previous + 1),
                };
                self.catching_up.insert(key);
                crate::metrics::count(crate::metrics::Counter::WatchCatchUps, 1);
                self.publish_gauges();
            }
        }
        self.delivered_revision = batch.last_revision;
    }

    /// Every live watcher switches to catching up from history, from `from_revision` (or its
    /// own start, if later): the live stream skipped revisions. One whose history is gone is
    /// cancelled with the compaction revision by the catch-up step.
    fn catch_up_all_live(&mut self, from_revision: i64) {
        for (key, watcher) in self.watchers.iter_mut() {
            if let Position::Live { min_revision } = watcher.position {
                watcher.position = Position::CatchingUp {
                    next_revision: min_revision.max(from_revision),
                };
                self.catching_up.insert(*key);
                crate::metrics::count(crate::metrics::Counter::WatchCatchUps, 1);
            }
        }
        self.publish_gauges();
    }

    /// Feeds catching-up watchers from history, one bounded step each; a watcher that reaches
    /// the live stream rejoins it, one whose history was compacted away is cancelled.
    pub fn catch_up_step(&mut self, view: &KvStore) {
        // Start after the last watcher served and wrap around, skipping watchers whose stream
        // is full, so no watcher waits behind others forever.
        let after = self.catch_up_cursor;
        let keys: Vec<WatcherKey> = self
            .catching_up
            .iter()
            .filter(|key| after.is_none_or(|cursor| **key > cursor))
            .chain(
                self.catching_up
                    .iter()
                    .filter(|key| after.is_some_and(|cursor| **key <= cursor)),
            )
            .filter(|key| {
                self.watchers
                    .get(key)
                    .is_none_or(|watcher| watcher.outbox.is_draining())
            })
            .take(CATCH_UP_WATCHERS_PER_STEP)
            .copied()
            .collect();
        if let Some(last) = keys.last() {
            self.catch_up_cursor = Some(*last);
        }
        let compact_revision = view.compact_revision();
        let live_revision = self.delivered_revision;
        for key in keys {
            let Some(watcher) = self.watchers.get_mut(&key) else {
                self.catching_up.remove(&key);
                continue;
            };
            let Position::CatchingUp { next_revision } = watcher.position else {
                self.catching_up.remove(&key);
                continue;
            };
            if !watcher.outbox.is_draining() {
                continue;
            }
            if next_revision < compact_revision {
                let response = WatchResponse {
                    header: Some(self.config.header(view.current_revision())),
                    watch_id: watcher.watch_id,
                    canceled: true,
                    compact_revision,
                    ..WatchResponse::default()
                };
                watcher.outbox.push(response);
                // The id stays registered on the stream until the client cancels it (etcd).
                self.remove_watcher(key);
                continue;
            }
            let upto = live_revision.min(next_revision + CATCH_UP_REVISIONS_PER_STEP - 1);
            if upto >= next_revision {
                let (range_key, range_end) = watcher.keys.as_request_range();
                let events: Vec<Event> = view
                    .events_between(&range_key, &range_end, next_revision, upto)
                    .iter()
                    .filter_map(|event| watcher.shape(event))
                    .collect();
                if !events.is_empty() {
                    debug_assert!(events.iter().all(|e| event_revision(e) >= next_revision));
                    let response = WatchResponse {
                        header: Some(self.config.header(upto)),
                        watch_id: watcher.watch_id,
                        events,
                        ..WatchResponse::default()
                    };
                    push_fragmented(watcher, response, self.config.fragment_bytes);
                }
            }
            let next = upto.max(next_revision - 1) + 1;
            watcher.position = if next > live_revision {
                self.catching_up.remove(&key);
                Position::Live { min_revision: next }
            } else {
                Position::CatchingUp {
                    next_revision: next,
                }
            };
        }
        self.publish_gauges();
    }
}

/// Queues an event response, split into fragments when the watcher asked for them and it is
/// too large (etcd: only responses with two or more events are split).
fn push_fragmented(watcher: &mut Watcher, response: WatchResponse, fragment_bytes: usize) {
    watcher.sent_since_progress = true;
    if !watcher.fragment || response.events.len() < 2 || response.encoded_len() <= fragment_bytes {
        watcher.outbox.push(response);
        return;
    }
    let template = WatchResponse {
        events: Vec::new(),
        ..response.clone()
    };
    let overhead = template.encoded_len();
    let mut parts: Vec<WatchResponse> = Vec::new();
    let mut current = template.clone();
    let mut current_bytes = overhead;
    for event in response.events {
        let event_bytes = event.encoded_len() + 8;
        if !current.events.is_empty() && current_bytes + event_bytes > fragment_bytes {
            parts.push(std::mem::replace(&mut current, template.clone()));
            current_bytes = overhead;
        }
        current_bytes += event_bytes;
        current.events.push(event);
    }
    parts.push(current);
    let last = parts.len() - 1;
    for (index, mut part) in parts.into_iter().enumerate() {
        part.fragment = index != last;
        watcher.outbox.push(part);
    }
}
