//! Serving a `RangeRequest` (etcd's `executeRange` over `rangeKeys`).
//!
//! Order of work, as in etcd:
//! 1. resolve the revision: `> visible` is a future revision, `<= 0` means
//!    the visible revision, below the last compaction is compacted;
//! 2. `count` = every key live in the range at that revision; it ignores
//!    `limit` AND the min/max revision filters (etcd counts in the index
//!    before filtering and never adjusts the count);
//! 3. `count_only` stops here with no kvs;
//! 4. drop kvs failing the min/max mod/create revision filters;
//! 5. sort the whole filtered set (etcd fetches everything when sorting or
//!    filtering, and `limit + 1` keys otherwise, which gives the same result);
//! 6. truncate to `limit`; `more` = more kvs survived step 4 than `limit`;
//! 7. `keys_only` blanks the values.

use std::cmp::Ordering;

use capstan_proto::etcdserverpb::range_request::{SortOrder, SortTarget};
use capstan_proto::etcdserverpb::{RangeRequest, RangeResponse};
use capstan_proto::mvccpb::KeyValue;

use crate::mvcc::error::MvccError;
use crate::mvcc::key_range::KeyRange;
use crate::mvcc::store::KvStore;

/// Serves `request` from `store`, where `visible_revision` is the newest
/// revision the reader may see (the store's current revision, or inside a
/// write txn that already changed something, the txn's own revision).
pub(crate) fn execute_range(
    store: &KvStore,
    request: &RangeRequest,
    visible_revision: i64,
) -> Result<RangeResponse, MvccError> {
    let read_revision = resolve_read_revision(store, request.revision, visible_revision)?;
    let key_range = KeyRange::new(&request.key, &request.range_end);
    let live = store.live_at(&key_range, read_revision);

    if request.count_only {
        return Ok(RangeResponse {
            count: count_as_i64(live.count()),
            ..RangeResponse::default()
        });
    }

    let reordering = reordering(request);
    let limit = usize::try_from(request.limit).unwrap_or(0);
    // In natural order without filters, `limit + 1` kvs decide `more`; the
    // rest only need counting.
    let kvs_needed =
        if reordering == Reordering::None && !has_revision_filters(request) && limit > 0 {
            limit.saturating_add(1)
        } else {
            usize::MAX
        };
    let mut count = 0usize;
    let mut kvs: Vec<KeyValue> = Vec::new();
    for (key, version) in live {
        count += 1;
        if kvs.len() < kvs_needed {
            let kv = version.to_key_value(key);
            if passes_revision_filters(request, &kv) {
                kvs.push(kv);
            }
        }
    }

    sort_key_values(&mut kvs, reordering);

    let more = limit > 0 && kvs.len() > limit;
    if more {
        kvs.truncate(limit);
    }
    if request.keys_only {
        for kv in &mut kvs {
            kv.value = Default::default();
        }
    }
    Ok(RangeResponse {
        header: None,
        kvs,
        more,
        count: count_as_i64(count),
    })
}

/// etcd's `rangeKeys` revision checks, in etcd's order.
fn resolve_read_revision(
    store: &KvStore,
    requested: i64,
    visible_revision: i64,
) -> Result<i64, MvccError> {
    if requested > visible_revision {
        return Err(MvccError::FutureRevision);
    }
    let revision = if requested <= 0 {
        visible_revision
    } else {
        requested
    };
    if revision < store.last_compaction {
        return Err(MvccError::Compacted);
    }
    Ok(revision)
}

fn count_as_i64(count: usize) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}

fn has_revision_filters(request: &RangeRequest) -> bool {
    request.min_mod_revision != 0
        || request.max_mod_revision != 0
        || request.min_create_revision != 0
        || request.max_create_revision != 0
}

/// The min/max mod/create revision filters; 0 leaves a bound unset.
fn passes_revision_filters(request: &RangeRequest, kv: &KeyValue) -> bool {
    let within =
        |value: i64, min: i64, max: i64| (min == 0 || value >= min) && (max == 0 || value <= max);
    within(
        kv.mod_revision,
        request.min_mod_revision,
        request.max_mod_revision,
    ) && within(
        kv.create_revision,
        request.min_create_revision,
        request.max_create_revision,
    )
}

/// How the kvs (already in ascending key order) must be reordered.
#[derive(Debug, PartialEq, Eq)]
enum Reordering {
    /// Keep ascending key order.
    None,
    /// Descending key order.
    ReverseKeys,
    /// Stable sort by a field; ties stay in ascending key order.
    By {
        target: SortTarget,
        descending: bool,
    },
}

/// etcd's `executeRange` sort rules:
/// * order NONE with a target other than KEY sorts ASCEND;
/// * KEY with NONE or ASCEND is the natural order;
/// * an unknown order value sorts nothing (etcd 3.6 picks a sorter but
///   neither of its ASCEND/DESCEND branches runs);
/// * an unknown target is left unsorted (etcd panics there).
fn reordering(request: &RangeRequest) -> Reordering {
    let Ok(target) = SortTarget::try_from(request.sort_target) else {
        return Reordering::None;
    };
    let Ok(order) = SortOrder::try_from(request.sort_order) else {
        return Reordering::None;
    };
    match (target, order) {
        (SortTarget::Key, SortOrder::None | SortOrder::Ascend) => Reordering::None,
        (SortTarget::Key, SortOrder::Descend) => Reordering::ReverseKeys,
        (target, order) => Reordering::By {
            target,
            descending: order == SortOrder::Descend,
        },
    }
}

fn sort_key_values(kvs: &mut [KeyValue], reordering: Reordering) {
    match reordering {
        Reordering::None => {}
        Reordering::ReverseKeys => kvs.reverse(),
        Reordering::By { target, descending } => kvs.sort_by(|a, b| {
            let ascending = compare_by_target(target, a, b);
            if descending {
                ascending.reverse()
            } else {
                ascending
            }
        }),
    }
}

fn compare_by_target(target: SortTarget, a: &KeyValue, b: &KeyValue) -> Ordering {
    match target {
        SortTarget::Key => a.key.cmp(&b.key),
        SortTarget::Version => a.version.cmp(&b.version),
        SortTarget::Create => a.create_revision.cmp(&b.create_revision),
        SortTarget::Mod => a.mod_revision.cmp(&b.mod_revision),
        SortTarget::Value => a.value.cmp(&b.value),
    }
}
