//! Alarms (etcd's alarm store): which member raised which alarm.
//!
//! Alarms are part of the replicated state, like etcd's `alarm` bucket: an ACTIVATE or
//! DEACTIVATE is a log entry applied on every member, so every member refuses the same writes
//! and a restart rebuilds the alarms by replaying the log (the page store will keep them in
//! its file beside the keys).
//!
//! While an alarm is raised the store refuses writes at apply time, as etcd's capped and
//! corrupt appliers do:
//! - NOSPACE: puts, txns that put (see [`quota`](super::quota)) and lease grants fail with
//!   `NoSpace`; reads, deletes, compactions, lease revokes and alarm changes still apply.
//! - CORRUPT: every put, delete, txn, compaction, lease grant and lease revoke fails with
//!   `Corrupt`.
//!
//! etcd swaps its applier on each activation and deactivation, so with both alarms raised it
//! behaves as the one raised last, and disarming either one lifts both; here the refusals
//! follow the set of raised alarms (CORRUPT before NOSPACE), which is also what etcd does
//! after a restart.

use capstan_proto::etcdserverpb::alarm_request::AlarmAction;
use capstan_proto::etcdserverpb::{AlarmMember, AlarmRequest, AlarmResponse, AlarmType};
use imbl::OrdSet;

use crate::mvcc::apply::WriteRequest;
use crate::mvcc::error::MvccError;
use crate::mvcc::quota::txn_cost_bytes;
use crate::mvcc::store::KvStore;

/// The raised alarms, ordered by alarm type, then member id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Alarms {
    raised: OrdSet<(i32, u64)>,
}

impl Alarms {
    /// The raised alarms of type `alarm`; every raised alarm for `AlarmType::None`.
    pub fn list(&self, alarm: AlarmType) -> Vec<AlarmMember> {
        self.raised
            .iter()
            .filter(|(raised, _)| alarm == AlarmType::None || *raised == alarm as i32)
            .map(|&(alarm, member_id)| AlarmMember { member_id, alarm })
            .collect()
    }

    /// Whether any member raised `alarm`.
    pub fn is_raised(&self, alarm: AlarmType) -> bool {
        self.raised
            .iter()
            .any(|(raised, _)| *raised == alarm as i32)
    }

    /// Whether `member_id` raised `alarm`.
    pub fn is_raised_by(&self, member_id: u64, alarm: AlarmType) -> bool {
        self.raised.contains(&(alarm as i32, member_id))
    }

    pub fn is_empty(&self) -> bool {
        self.raised.is_empty()
    }

    /// Raises `alarm` again from a snapshot; false if it is no alarm type or already raised.
    pub(crate) fn restore(&mut self, alarm: &AlarmMember) -> bool {
        let known = matches!(
            AlarmType::try_from(alarm.alarm),
            Ok(AlarmType::Nospace | AlarmType::Corrupt)
        );
        known && self.raised.insert((alarm.alarm, alarm.member_id)).is_none()
    }

    /// Why `request` may not apply while these alarms are raised, if it may not.
    pub fn refusal(&self, request: &WriteRequest) -> Option<MvccError> {
        if self.is_raised(AlarmType::Corrupt) {
            return match request {
                WriteRequest::Alarm(_) => None,
                _ => Some(MvccError::Corrupt),
            };
        }
        if self.is_raised(AlarmType::Nospace) {
            return match request {
                WriteRequest::Put(_) | WriteRequest::LeaseGrant(_) => Some(MvccError::NoSpace),
                WriteRequest::Txn(txn) if txn_cost_bytes(txn) > 0 => Some(MvccError::NoSpace),
                _ => None,
            };
        }
        None
    }

    /// etcd's `applierV3backend.Alarm`: GET lists, ACTIVATE answers with the alarm (also when
    /// it was already raised), DEACTIVATE with the alarm it cleared (nothing if it was not
    /// raised). Activating `NONE` does nothing (etcd 3.5+).
    fn apply(&mut self, request: &AlarmRequest) -> AlarmResponse {
        let alarm = AlarmType::try_from(request.alarm).unwrap_or(AlarmType::None);
        let member = AlarmMember {
            member_id: request.member_id,
            alarm: request.alarm,
        };
        let entry = (request.alarm, request.member_id);
        let alarms = match AlarmAction::try_from(request.action) {
            Ok(AlarmAction::Get) => self.list(alarm),
            Ok(AlarmAction::Activate) if alarm != AlarmType::None => {
                self.raised.insert(entry);
                vec![member]
            }
            Ok(AlarmAction::Deactivate) if self.raised.remove(&entry).is_some() => vec![member],
            _ => Vec::new(),
        };
        AlarmResponse {
            header: None,
            alarms,
        }
    }
}

impl KvStore {
    /// The raised alarms as of this snapshot.
    pub fn alarms(&self) -> &Alarms {
        &self.alarms
    }

    pub(crate) fn apply_alarm(&mut self, request: &AlarmRequest) -> AlarmResponse {
        let response = self.alarms.apply(request);
        if !response.alarms.is_empty() && request.action != AlarmAction::Get as i32 {
            tracing::warn!(
                action = ?AlarmAction::try_from(request.action).unwrap_or(AlarmAction::Get),
                alarm = ?AlarmType::try_from(request.alarm).unwrap_or(AlarmType::None),
                member = format!("{:x}", request.member_id),
                "alarm changed"
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(action: AlarmAction, member_id: u64, alarm: AlarmType) -> AlarmRequest {
        AlarmRequest {
            action: action as i32,
            member_id,
            alarm: alarm as i32,
        }
    }

    #[test]
    fn activate_list_and_deactivate_as_etcd() {
        let mut alarms = Alarms::default();
        let raised = alarms.apply(&request(AlarmAction::Activate, 7, AlarmType::Nospace));
        assert_eq!(raised.alarms.len(), 1);
        // Raising it again answers with it again and changes nothing.
        let again = alarms.apply(&request(AlarmAction::Activate, 7, AlarmType::Nospace));
        assert_eq!(again.alarms, raised.alarms);
        alarms.apply(&request(AlarmAction::Activate, 3, AlarmType::Corrupt));
        alarms.apply(&request(AlarmAction::Activate, 3, AlarmType::None));
        let all = alarms.apply(&request(AlarmAction::Get, 0, AlarmType::None));
        let listed: Vec<(u64, i32)> = all.alarms.iter().map(|a| (a.member_id, a.alarm)).collect();
        assert_eq!(listed, vec![(7, 1), (3, 2)]);
        assert_eq!(alarms.list(AlarmType::Corrupt).len(), 1);
        // Deactivating what is not raised answers with nothing.
        let none = alarms.apply(&request(AlarmAction::Deactivate, 9, AlarmType::Nospace));
        assert!(none.alarms.is_empty());
        let cleared = alarms.apply(&request(AlarmAction::Deactivate, 7, AlarmType::Nospace));
        assert_eq!(cleared.alarms.len(), 1);
        assert!(!alarms.is_raised(AlarmType::Nospace));
        assert!(alarms.is_raised_by(3, AlarmType::Corrupt));
    }

    #[test]
    fn nospace_refuses_only_writes_that_grow_the_store() {
        use crate::mvcc::test_support::*;
        let mut store = KvStore::new();
        grant(&mut store, 5, 60);
        put(&mut store, "a", "1");
        let raise = WriteRequest::Alarm(request(AlarmAction::Activate, 1, AlarmType::Nospace));
        store.apply(&raise).expect("alarm applies");
        let refused = |store: &mut KvStore, write: WriteRequest| {
            assert_eq!(store.apply(&write).map(|_| ()), Err(MvccError::NoSpace));
        };
        refused(&mut store, WriteRequest::Put(put_request("b", "2")));
        refused(&mut store, grant_request(6, 60));
        refused(
            &mut store,
            WriteRequest::Txn(txn(vec![], vec![], vec![put_op("b", "2")])),
        );
        let nested_put = txn(
            vec![],
            vec![txn_op(txn(vec![], vec![put_op("b", "2")], vec![]))],
            vec![],
        );
        refused(&mut store, WriteRequest::Txn(nested_put));
        let revision = store.current_revision();
        let reads_and_deletes = txn(vec![], vec![range_op("a", ""), delete_op("z", "")], vec![]);
        store
            .apply(&WriteRequest::Txn(reads_and_deletes))
            .expect("a txn without puts applies");
        delete(&mut store, "a", "");
        store
            .apply(&compaction_request(revision))
            .expect("compaction applies");
        store.apply(&revoke_request(5)).expect("revoke applies");
        let clear = WriteRequest::Alarm(request(AlarmAction::Deactivate, 1, AlarmType::Nospace));
        store.apply(&clear).expect("disarm applies");
        store
            .apply(&WriteRequest::Put(put_request("b", "2")))
            .expect("puts apply again");
    }

    #[test]
    fn corrupt_refuses_every_write() {
        use crate::mvcc::test_support::*;
        let mut store = KvStore::new();
        put(&mut store, "a", "1");
        let raise = WriteRequest::Alarm(request(AlarmAction::Activate, 1, AlarmType::Corrupt));
        store.apply(&raise).expect("alarm applies");
        let delete = WriteRequest::DeleteRange(delete_request("a", ""));
        assert_eq!(store.apply(&delete).map(|_| ()), Err(MvccError::Corrupt));
        assert_eq!(
            store.apply(&compaction_request(1)).map(|_| ()),
            Err(MvccError::Corrupt)
        );
        let clear = WriteRequest::Alarm(request(AlarmAction::Deactivate, 1, AlarmType::Corrupt));
        store.apply(&clear).expect("disarm applies");
        store.apply(&delete).expect("deletes apply again");
    }
}
