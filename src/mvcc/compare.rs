//! Evaluating a txn's compares (etcd's `applyCompare` / `compareKV`).
//!
//! * A compare with a `range_end` covers every live key in the range; all
//!   of them must satisfy it.
//! * If no key is live there, a VALUE compare fails; any other target
//!   compares against an all-zero KeyValue, so `version == 0`,
//!   `create_revision == 0`, `mod_revision == 0` and `lease == 0` hold for a
//!   missing key.
//! * A `target_union` of the wrong kind (or none) compares against 0 / the
//!   empty value; an unknown target compares equal; an unknown result
//!   value passes.

use std::cmp::Ordering;

use bytes::Bytes;
use capstan_proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use capstan_proto::etcdserverpb::Compare;
use capstan_proto::mvccpb::KeyValue;

use crate::mvcc::key_range::KeyRange;
use crate::mvcc::store::KvStore;

/// True when every compare holds at the store's current revision.
pub(crate) fn compares_hold(store: &KvStore, compares: &[Compare]) -> bool {
    compares.iter().all(|compare| compare_holds(store, compare))
}

fn compare_holds(store: &KvStore, compare: &Compare) -> bool {
    let range = KeyRange::new(&compare.key, &compare.range_end);
    let mut live = store.live_at(&range, store.current_revision).peekable();
    if live.peek().is_none() {
        if compare.target == CompareTarget::Value as i32 {
            // A missing value cannot be told apart from an empty one.
            return false;
        }
        return compare_key_value(compare, &KeyValue::default());
    }
    live.all(|(key, version)| compare_key_value(compare, &version.to_key_value(key)))
}

fn compare_key_value(compare: &Compare, kv: &KeyValue) -> bool {
    let ordering = match CompareTarget::try_from(compare.target) {
        Ok(CompareTarget::Value) => {
            let empty = Bytes::new();
            let wanted = match &compare.target_union {
                Some(TargetUnion::Value(value)) => value,
                _ => &empty,
            };
            kv.value.as_ref().cmp(wanted.as_ref())
        }
        Ok(CompareTarget::Version) => kv
            .version
            .cmp(&wanted_number(compare, CompareTarget::Version)),
        Ok(CompareTarget::Create) => kv
            .create_revision
            .cmp(&wanted_number(compare, CompareTarget::Create)),
        Ok(CompareTarget::Mod) => kv
            .mod_revision
            .cmp(&wanted_number(compare, CompareTarget::Mod)),
        Ok(CompareTarget::Lease) => kv.lease.cmp(&wanted_number(compare, CompareTarget::Lease)),
        Err(_) => Ordering::Equal,
    };
    match CompareResult::try_from(compare.result) {
        Ok(CompareResult::Equal) => ordering == Ordering::Equal,
        Ok(CompareResult::NotEqual) => ordering != Ordering::Equal,
        Ok(CompareResult::Greater) => ordering == Ordering::Greater,
        Ok(CompareResult::Less) => ordering == Ordering::Less,
        Err(_) => true,
    }
}

/// The compare's number if its `target_union` matches `target`, else 0.
fn wanted_number(compare: &Compare, target: CompareTarget) -> i64 {
    match (&compare.target_union, target) {
        (Some(TargetUnion::Version(number)), CompareTarget::Version)
        | (Some(TargetUnion::CreateRevision(number)), CompareTarget::Create)
        | (Some(TargetUnion::ModRevision(number)), CompareTarget::Mod)
        | (Some(TargetUnion::Lease(number)), CompareTarget::Lease) => *number,
        _ => 0,
    }
}
