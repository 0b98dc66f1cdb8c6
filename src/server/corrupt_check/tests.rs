//! The comparison rules (etcd's `InitialCheck` table in the module doc), then the whole check
//! against real peer transports on 127.0.0.1 answering from their own stores.

use super::*;
use crate::mvcc::test_support::{compaction_request, put};
use crate::peer::{PeerTls, PeerTransport, TransportConfig};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::mpsc::TryRecvError;
use std::time::{Duration, Instant};

const CLUSTER: u64 = 0x0c1a_57e4;
const LOCAL: u64 = 1;

fn local_hash() -> KvHash {
    KvHash {
        hash: 100,
        compact_revision: 5,
        hash_revision: 20,
    }
}

fn result(id: u64, reply: HashReply) -> PeerResult {
    PeerResult {
        id,
        endpoints: vec![format!("127.0.0.1:{id}")],
        answer: Ok(HashAnswer {
            member_id: id,
            current_revision: 25,
            reply,
        }),
    }
}

fn hash(hash: u32, compact_revision: i64) -> HashReply {
    HashReply::Hash {
        hash,
        compact_revision,
        hash_revision: 20,
    }
}

#[test]
fn same_hash_passes_and_counts_as_compared() {
    let verdict = judge(
        LOCAL,
        &local_hash(),
        &[result(2, hash(100, 5)), result(3, hash(100, 5))],
    );
    assert_eq!(
        verdict,
        Verdict {
            compared: 2,
            skipped: 0,
            mismatched: Vec::new()
        }
    );
}

#[test]
fn other_hash_at_the_same_compaction_is_a_mismatch() {
    let verdict = judge(
        LOCAL,
        &local_hash(),
        &[result(2, hash(100, 5)), result(3, hash(101, 5))],
    );
    assert_eq!(verdict.mismatched, vec![3]);
    assert_eq!(verdict.compared, 2);
}

#[test]
fn other_hash_at_another_compaction_is_not() {
    let verdict = judge(
        LOCAL,
        &local_hash(),
        &[result(2, hash(7, 9)), result(3, hash(8, -1))],
    );
    assert!(verdict.mismatched.is_empty());
    assert_eq!(verdict.compared, 2);
}

#[test]
fn peers_that_cannot_answer_are_skipped() {
    let unreachable = PeerResult {
        id: 6,
        endpoints: Vec::new(),
        answer: Err("connection refused".to_string()),
    };
    let verdict = judge(
        LOCAL,
        &local_hash(),
        &[
            result(2, HashReply::FutureRevision),
            result(
                3,
                HashReply::Compacted {
                    compact_revision: 30,
                },
            ),
            result(4, HashReply::ClusterMismatch),
            result(5, HashReply::Unavailable),
            unreachable,
        ],
    );
    assert_eq!(
        verdict,
        Verdict {
            compared: 0,
            skipped: 5,
            mismatched: Vec::new()
        }
    );
}

#[test]
fn hash_source_answers_like_hash_kv() {
    let mut store = KvStore::new();
    for value in ["1", "2", "3", "4"] {
        put(&mut store, "k", value);
    }
    store.apply(&compaction_request(3)).expect("compact");
    let expected = store.hash_kv(4).expect("hash");
    let source = hash_source(Arc::new(ArcSwap::from_pointee(store)));
    let answer = source(4);
    assert_eq!(answer.current_revision, 5);
    assert_eq!(
        answer.reply,
        HashReply::Hash {
            hash: expected.hash,
            compact_revision: 3,
            hash_revision: 4
        }
    );
    assert_eq!(
        source(2).reply,
        HashReply::Compacted {
            compact_revision: 3
        }
    );
    assert_eq!(source(6).reply, HashReply::FutureRevision);
}

/// A member on its own executor thread: a peer transport answering hash queries from `store`.
struct RemoteMember {
    address: SocketAddr,
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RemoteMember {
    fn start(id: u64, cluster_id: u64, store: KvStore) -> RemoteMember {
        let (address_sender, address) = std::sync::mpsc::channel();
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            glommio::LocalExecutorBuilder::default()
                .io_memory(1 << 20)
                .spawn(move || async move {
                    let transport = PeerTransport::start(
                        TransportConfig {
                            local_id: id,
                            cluster_id,
                            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
                            peers: Vec::new(),
                            tls: PeerTls::plain(),
                            hashes: Some(hash_source(Arc::new(ArcSwap::from_pointee(store)))),
                        },
                        Rc::new(|_, _| {}),
                    )
                    .expect("transport starts");
                    address_sender
                        .send(transport.local_address())
                        .expect("send address");
                    // Runs until the test drops the sender.
                    while matches!(stopped.try_recv(), Err(TryRecvError::Empty)) {
                        glommio::timer::sleep(Duration::from_millis(10)).await;
                    }
                    transport.stop();
                })
                .expect("executor starts")
                .join()
                .expect("executor ends");
        });
        let address = address
            .recv_timeout(Duration::from_secs(10))
            .expect("member listening");
        RemoteMember {
            address,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn to_ask(&self, id: u64) -> PeerToAsk {
        PeerToAsk {
            id,
            addresses: vec![PeerAddress::plain(id, self.address)],
        }
    }
}

impl Drop for RemoteMember {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn store_with(values: &[&str]) -> KvStore {
    let mut store = KvStore::new();
    for value in values {
        put(&mut store, "k", value);
    }
    store
}

fn asker() -> Asker {
    Asker {
        local_id: LOCAL,
        cluster_id: CLUSTER,
    }
}

#[test]
fn whole_check_over_the_peer_port() {
    let local = store_with(&["a", "b"]);
    // Same history, and further ahead: hashed at our revision, so equal.
    let same = RemoteMember::start(2, CLUSTER, store_with(&["a", "b"]));
    let ahead = RemoteMember::start(3, CLUSTER, store_with(&["a", "b", "c"]));
    // Behind us: our revision is its future.
    let behind = RemoteMember::start(4, CLUSTER, store_with(&["a"]));
    // Another cluster.
    let stranger = RemoteMember::start(5, 0xdead, store_with(&["a", "b"]));
    // Nobody listens there.
    let gone = PeerToAsk {
        id: 6,
        addresses: vec![PeerAddress::plain(6, SocketAddr::from(([127, 0, 0, 1], 1)))],
    };
    let peers = vec![
        same.to_ask(2),
        ahead.to_ask(3),
        behind.to_ask(4),
        stranger.to_ask(5),
        gone,
    ];
    let started = Instant::now();
    let verdict = initial_check(asker(), &local, &peers, None).expect("no corruption");
    assert_eq!(
        verdict,
        Verdict {
            compared: 2,
            skipped: 3,
            mismatched: Vec::new()
        }
    );
    assert!(started.elapsed() < Duration::from_secs(5));

    // A member whose value differs at the same revision and compaction.
    let corrupt = RemoteMember::start(7, CLUSTER, store_with(&["a", "x"]));
    let error = initial_check(asker(), &local, &[same.to_ask(2), corrupt.to_ask(7)], None)
        .expect_err("inconsistent");
    assert_eq!(error, "1 found data inconsistency with peers");

    // The id answering must be the one asked.
    let wrong_id = PeerToAsk {
        id: 8,
        addresses: vec![PeerAddress::plain(8, same.address)],
    };
    let verdict = initial_check(asker(), &local, &[wrong_id], None).expect("skipped");
    assert_eq!(verdict.skipped, 1);
}
