//! etcd's initial corruption check: `--feature-gates=InitialCorruptCheck=true` (etcd 3.5:
//! `--experimental-initial-corrupt-check`). etcd: `server/etcdserver/corrupt.go`
//! (`InitialCheck`, `getPeerHashKVs`, `HashByRev`), called from `server/embed/etcd.go`
//! (`StartEtcd`) for a member that already has data, before it serves peers or clients.
//!
//! A restarting member hashes its loaded state at its current revision `r` (HashKV,
//! `mvcc::hash`) and asks every other member of its member list for its HashKV at `r` over the
//! peer port ([`crate::peer::hash_query`]; etcd's `/members/hashkv`), each of the member's peer
//! urls in turn until one answers. Per member:
//!
//! | answer                                      | etcd's log line (warning)                                   | counts as  |
//! |---------------------------------------------|-------------------------------------------------------------|------------|
//! | same hash                                   | —                                                           | compared   |
//! | other hash, same compact revision           | `found different hash values from remote peer`              | mismatch   |
//! | other hash, other compact revision          | `found different compact revision values from remote peer`  | compared   |
//! | `r` compacted there (it is ahead of us)     | `cannot fetch hash from remote peer; local member is behind`| skipped    |
//! | `r` in its future (it is behind us)         | `cannot fetch hash from slow remote peer`                   | skipped    |
//! | another cluster                             | `cluster ID mismatch`                                       | skipped    |
//! | no answer (down, refused, timeout, garbage) | `failed hash kv request` per url                            | skipped    |
//!
//! One mismatch fails the start: `<member id> found data inconsistency with peers` (etcd's
//! error, which its `etcd` command turns into a fatal exit, status 1). Otherwise the member
//! logs `initial corruption checking passed; no corruption` (with how many members were
//! compared and skipped) and goes on. A member that cannot be asked never stops the start: in
//! a whole-cluster restart nobody may be up yet.
//!
//! Where Capstan differs, on purpose:
//! - The members are asked in parallel, each with [`hash_query::CONNECT_TIMEOUT`] and
//!   [`hash_query::ANSWER_TIMEOUT`] per url (etcd asks one after the other, each with its
//!   request timeout of 5 s plus two election timeouts), so a stopped peer costs about 2 s,
//!   not 7 s per peer.
//! - The check runs right after the page store is loaded, before the WAL is replayed and
//!   before the peer port is bound (etcd: after its backend is opened, before `servePeers`), so
//!   members restarting together refuse each other's queries at once and all start. A member
//!   whose page store holds nothing yet (a new member, or one that never checkpointed) skips
//!   the check, as etcd's does when it has no WAL yet.
//! - etcd logs the peer's id from the header of the answer, which its handler leaves empty;
//!   Capstan logs the id the member answered with.

use crate::config::ClientUrl;
use crate::membership::MemberList;
use crate::mvcc::{KvHash, KvStore, MvccError};
use crate::peer::hash_query::{self, Asker};
use crate::peer::hash_wire::{HashAnswer, HashReply};
use crate::peer::{HashSource, PeerAddress};
use arc_swap::ArcSwap;
use std::sync::Arc;

/// One other member to ask, with its peer urls in the order they are tried.
#[derive(Clone, Debug)]
pub struct PeerToAsk {
    pub id: u64,
    pub addresses: Vec<PeerAddress>,
}

/// What one member said, or why it said nothing.
#[derive(Clone, Debug)]
pub struct PeerResult {
    pub id: u64,
    /// Its peer urls (for the log).
    pub endpoints: Vec<String>,
    pub answer: Result<HashAnswer, String>,
}

/// How the comparison went.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Members whose hash was compared with ours (mismatches included).
    pub compared: usize,
    /// Members that could not be compared.
    pub skipped: usize,
    /// Members with another hash at the same compact revision.
    pub mismatched: Vec<u64>,
}

/// Every member of `members` but `local_id`, with its peer urls (etcd asks
/// `s.cluster.Members()`). A url that does not parse is left out, with a warning.
pub fn peers_to_ask(members: &MemberList, local_id: u64) -> Vec<PeerToAsk> {
    members
        .members()
        .iter()
        .filter(|member| member.id != local_id)
        .map(|member| PeerToAsk {
            id: member.id,
            addresses: member
                .peer_ur_ls
                .iter()
                .filter_map(|url| match ClientUrl::parse(url) {
                    Ok(parsed) => Some(PeerAddress::from_url(member.id, &parsed)),
                    Err(error) => {
                        tracing::warn!(
                            member = format!("{:x}", member.id),
                            error,
                            "peer url left out of the initial corruption check"
                        );
                        None
                    }
                })
                .collect(),
        })
        .collect()
}

/// Runs the check for a member with `local` loaded; `Err` is etcd's start-up error.
pub fn initial_check(
    asker: Asker,
    local: &KvStore,
    peers: &[PeerToAsk],
    tls: Option<&Arc<rustls::ClientConfig>>,
) -> Result<Verdict, String> {
    let local_id = format!("{:x}", asker.local_id);
    tracing::info!(
        local_member_id = local_id,
        timeout = ?hash_query::CONNECT_TIMEOUT + hash_query::ANSWER_TIMEOUT,
        peers = peers.len(),
        "starting initial corruption check"
    );
    let local_hash = local
        .hash_kv(0)
        .map_err(|error| format!("{local_id} failed to fetch hash ({error})"))?;
    let results = ask_all(asker, local_hash.hash_revision, peers, tls);
    let verdict = judge(asker.local_id, &local_hash, &results);
    if !verdict.mismatched.is_empty() {
        let message = format!("{local_id} found data inconsistency with peers");
        tracing::error!(error = message, "checkInitialHashKV failed");
        return Err(message);
    }
    tracing::info!(
        local_member_id = local_id,
        peers_compared = verdict.compared,
        peers_skipped = verdict.skipped,
        revision = local_hash.hash_revision,
        "initial corruption checking passed; no corruption"
    );
    Ok(verdict)
}

/// Asks every member at once (one thread each), each of its urls in turn until one answers.
fn ask_all(
    asker: Asker,
    revision: i64,
    peers: &[PeerToAsk],
    tls: Option<&Arc<rustls::ClientConfig>>,
) -> Vec<PeerResult> {
    std::thread::scope(|scope| {
        let asks: Vec<_> = peers
            .iter()
            .map(|peer| scope.spawn(move || ask_one(asker, revision, peer, tls)))
            .collect();
        asks.into_iter()
            .zip(peers)
            .map(|(ask, peer)| {
                ask.join().unwrap_or_else(|_| PeerResult {
                    id: peer.id,
                    endpoints: endpoints(peer),
                    answer: Err("the asking thread panicked".to_string()),
                })
            })
            .collect()
    })
}

fn endpoints(peer: &PeerToAsk) -> Vec<String> {
    peer.addresses
        .iter()
        .map(|address| address.address.to_string())
        .collect()
}

fn ask_one(
    asker: Asker,
    revision: i64,
    peer: &PeerToAsk,
    tls: Option<&Arc<rustls::ClientConfig>>,
) -> PeerResult {
    let mut last_error = "the member has no peer url".to_string();
    for address in &peer.addresses {
        let error = match hash_query::ask(address, asker, revision, tls) {
            Ok(HashAnswer {
                reply: HashReply::Unavailable,
                ..
            }) => "the member cannot hash now".to_string(),
            Ok(answer) => {
                return PeerResult {
                    id: peer.id,
                    endpoints: endpoints(peer),
                    answer: Ok(answer),
                }
            }
            Err(error) => error.to_string(),
        };
        tracing::warn!(
            local_member_id = format!("{:x}", asker.local_id),
            requested_revision = revision,
            remote_peer_endpoint = %address.address,
            error,
            "failed hash kv request"
        );
        last_error = error;
    }
    PeerResult {
        id: peer.id,
        endpoints: endpoints(peer),
        answer: Err(last_error),
    }
}

/// Compares the answers with our hash, logging each as etcd does. Pure but for the log.
pub fn judge(local_id: u64, local: &KvHash, results: &[PeerResult]) -> Verdict {
    let mut verdict = Verdict::default();
    for result in results {
        let local_member_id = format!("{local_id:x}");
        let remote_peer_id = format!("{:x}", result.id);
        let answer = match &result.answer {
            Ok(answer) => answer,
            Err(_) => {
                // Logged per url as `failed hash kv request`.
                verdict.skipped += 1;
                continue;
            }
        };
        let remote_peer_revision = answer.current_revision;
        match answer.reply {
            HashReply::Hash {
                hash,
                compact_revision,
                ..
            } => {
                verdict.compared += 1;
                if hash == local.hash {
                    continue;
                }
                let same_compaction = compact_revision == local.compact_revision;
                let message = if same_compaction {
                    verdict.mismatched.push(result.id);
                    "found different hash values from remote peer"
                } else {
                    "found different compact revision values from remote peer"
                };
                tracing::warn!(
                    local_member_id,
                    local_member_revision = local.hash_revision,
                    local_member_compact_revision = local.compact_revision,
                    local_member_hash = local.hash,
                    remote_peer_id,
                    remote_peer_endpoints = ?result.endpoints,
                    remote_peer_revision,
                    remote_peer_compact_revision = compact_revision,
                    remote_peer_hash = hash,
                    "{message}"
                );
            }
            reply => {
                verdict.skipped += 1;
                let message = match reply {
                    HashReply::FutureRevision => "cannot fetch hash from slow remote peer",
                    HashReply::Compacted { .. } => {
                        "cannot fetch hash from remote peer; local member is behind"
                    }
                    HashReply::ClusterMismatch => "cluster ID mismatch",
                    HashReply::Hash { .. } | HashReply::Unavailable => {
                        "cannot fetch hash from remote peer"
                    }
                };
                tracing::warn!(
                    local_member_id,
                    local_member_revision = local.hash_revision,
                    local_member_compact_revision = local.compact_revision,
                    local_member_hash = local.hash,
                    remote_peer_id,
                    remote_peer_endpoints = ?result.endpoints,
                    remote_peer_revision,
                    "{message}"
                );
            }
        }
    }
    verdict
}

/// The peer port's answer to hash queries: HashKV of the owner shard's current read view.
pub fn hash_source(read_view: Arc<ArcSwap<KvStore>>) -> HashSource {
    Arc::new(move |revision| {
        let view = read_view.load_full();
        let reply = match view.hash_kv(revision) {
            Ok(hashed) => HashReply::Hash {
                hash: hashed.hash,
                compact_revision: hashed.compact_revision,
                hash_revision: hashed.hash_revision,
            },
            Err(MvccError::Compacted) => HashReply::Compacted {
                compact_revision: view.compact_revision_or_unset(),
            },
            Err(MvccError::FutureRevision) => HashReply::FutureRevision,
            Err(_) => HashReply::Unavailable,
        };
        HashAnswer {
            member_id: 0,
            current_revision: view.current_revision(),
            reply,
        }
    })
}

#[cfg(test)]
mod tests;
