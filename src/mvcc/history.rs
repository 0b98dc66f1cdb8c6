//! Reading changes back out of history, for watchers that start in the past or fell behind the
//! live stream of events.

use bytes::Bytes;
use capstan_proto::mvccpb::Event;

use crate::mvcc::key_range::KeyRange;
use crate::mvcc::store::KvStore;

impl KvStore {
    /// Every change to a key selected by `key`/`range_end` (Range's conventions) with main
    /// revision in `from_revision..=to_revision`, ordered by revision (main, then sub), as
    /// watch events with `prev_kv` set whenever the key's previous version was live.
    ///
    /// The caller checks `from_revision` against [`KvStore::compact_revision`]: below it,
    /// history is incomplete.
    pub fn events_between(
        &self,
        key: &Bytes,
        range_end: &Bytes,
        from_revision: i64,
        to_revision: i64,
    ) -> Vec<Event> {
        let range = KeyRange::new(key, range_end);
        if range.is_empty() || from_revision > to_revision {
            return Vec::new();
        }
        let mut changes = Vec::new();
        for (key, history) in self.keys.range::<_, [u8]>(range.bounds()) {
            history.events_between(key, from_revision, to_revision, &mut changes);
        }
        changes.sort_by_key(|(revision, _)| *revision);
        changes.into_iter().map(|(_, event)| event).collect()
    }
}

#[cfg(test)]
mod tests {
    use crate::mvcc::test_support::*;
    use crate::mvcc::KvStore;
    use bytes::Bytes;
    use capstan_proto::mvccpb::event::EventType;

    fn summary(store: &KvStore, key: &str, end: &str, from: i64, to: i64) -> Vec<String> {
        store
            .events_between(
                &Bytes::from(key.to_string()),
                &Bytes::from(end.to_string()),
                from,
                to,
            )
            .iter()
            .map(|event| {
                let kv = event.kv.clone().unwrap_or_default();
                let kind = if event.r#type == EventType::Delete as i32 {
                    "DEL"
                } else {
                    "PUT"
                };
                let prev = event
                    .prev_kv
                    .as_ref()
                    .map(|prev| String::from_utf8_lossy(&prev.value).into_owned())
                    .unwrap_or_default();
                format!(
                    "{kind} {}@{} ={} prev={prev}",
                    String::from_utf8_lossy(&kv.key),
                    kv.mod_revision,
                    String::from_utf8_lossy(&kv.value)
                )
            })
            .collect()
    }

    #[test]
    fn events_come_back_in_revision_order_with_prev_kv() {
        let mut store = KvStore::new();
        put(&mut store, "b", "1"); // 2
        put(&mut store, "a", "1"); // 3
        put(&mut store, "b", "2"); // 4
        delete(&mut store, "a", ""); // 5
        put(&mut store, "a", "3"); // 6
        assert_eq!(
            summary(&store, "a", "c", 3, 6),
            vec![
                "PUT a@3 =1 prev=",
                "PUT b@4 =2 prev=1",
                "DEL a@5 = prev=1",
                "PUT a@6 =3 prev=",
            ]
        );
        assert_eq!(summary(&store, "b", "", 1, 3), vec!["PUT b@2 =1 prev="]);
        assert!(summary(&store, "a", "c", 7, 9).is_empty());
    }

    #[test]
    fn a_delete_at_the_compaction_revision_is_still_an_event() {
        let mut store = KvStore::new();
        put(&mut store, "a", "1"); // 2
        delete(&mut store, "a", ""); // 3
        store.apply(&compaction_request(3)).expect("compact");
        assert_eq!(summary(&store, "a", "", 3, 3), vec!["DEL a@3 = prev="]);
        put(&mut store, "x", "1"); // 4
        store.apply(&compaction_request(4)).expect("compact");
        assert!(summary(&store, "a", "", 3, 4).is_empty());
    }
}
