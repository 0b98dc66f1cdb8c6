//! Leases as part of the replicated state (the bookkeeping half of etcd's
//! lessor; expiry timing lives outside the store).
//!
//! Invariant: a key is attached to lease `L` exactly when it is live now and
//! its newest version has `lease == L`, and every such `L` exists. Puts
//! check that their lease exists before writing, `record_version` moves keys
//! between leases on every write, and revoking a lease deletes its keys.

use bytes::Bytes;
use capstan_proto::etcdserverpb::{LeaseGrantRequest, LeaseGrantResponse};
use imbl::OrdSet;

use crate::mvcc::error::MvccError;
use crate::mvcc::store::KvStore;

/// Rough bookkeeping cost of one lease for `approximate_bytes`.
pub(crate) const LEASE_OVERHEAD_BYTES: u64 = 64;

/// One granted lease, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LeaseRecord {
    /// TTL in seconds as granted (already normalised by the proposer).
    pub granted_ttl: i64,
    /// Keys whose newest version is live and carries this lease.
    pub keys: OrdSet<Bytes>,
}

/// A lease as the service layer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseInfo {
    pub id: i64,
    /// TTL in seconds as granted.
    pub granted_ttl: i64,
    /// Attached keys, ascending.
    pub keys: Vec<Bytes>,
}

impl KvStore {
    /// The lease `id`, if it exists in this snapshot.
    pub fn lease(&self, id: i64) -> Option<LeaseInfo> {
        self.leases.get(&id).map(|record| LeaseInfo {
            id,
            granted_ttl: record.granted_ttl,
            keys: record.keys.iter().cloned().collect(),
        })
    }

    /// Every existing lease id, ascending.
    pub fn lease_ids(&self) -> Vec<i64> {
        self.leases.keys().copied().collect()
    }

    /// etcd's `checkLease`: lease 0 means none; any other id must exist.
    pub(crate) fn check_lease_exists(&self, lease: i64) -> Result<(), MvccError> {
        if lease == 0 || self.leases.contains_key(&lease) {
            Ok(())
        } else {
            Err(MvccError::LeaseNotFound)
        }
    }

    /// etcd's `lessor.Grant` minus the TTL checks, which the proposer did:
    /// id 0 is `LeaseNotFound`, an existing id `LeaseExists`. No revision.
    pub(crate) fn grant_lease(
        &mut self,
        request: &LeaseGrantRequest,
    ) -> Result<LeaseGrantResponse, MvccError> {
        if request.id == 0 {
            return Err(MvccError::LeaseNotFound);
        }
        if self.leases.contains_key(&request.id) {
            return Err(MvccError::LeaseExists);
        }
        self.leases.insert(
            request.id,
            LeaseRecord {
                granted_ttl: request.ttl,
                keys: OrdSet::new(),
            },
        );
        self.approximate_bytes += LEASE_OVERHEAD_BYTES;
        Ok(LeaseGrantResponse {
            header: None,
            id: request.id,
            ttl: request.ttl,
            error: String::new(),
        })
    }

    /// The keys attached to lease `id` (an O(1) copy), if it exists.
    pub(crate) fn lease_keys(&self, id: i64) -> Option<OrdSet<Bytes>> {
        self.leases.get(&id).map(|record| record.keys.clone())
    }

    /// Forgets lease `id`; its keys must already have been deleted.
    pub(crate) fn remove_lease(&mut self, id: i64) {
        if let Some(record) = self.leases.remove(&id) {
            debug_assert!(record.keys.is_empty(), "revoked lease still has keys");
            self.approximate_bytes = self.approximate_bytes.saturating_sub(LEASE_OVERHEAD_BYTES);
        }
    }

    /// Moves `key` from lease `from` to lease `to` (0: none) after a write
    /// changed which lease its newest live version carries.
    pub(crate) fn reattach_key(&mut self, key: &Bytes, from: i64, to: i64) {
        if from == to {
            return;
        }
        if let Some(record) = self.leases.get_mut(&from) {
            record.keys.remove(key);
        }
        if to != 0 {
            let attached = self.leases.get_mut(&to).map(|record| {
                record.keys.insert(key.clone());
            });
            debug_assert!(attached.is_some(), "put with a lease that does not exist");
        }
    }
}
