//! End-to-end tests: real transports on 127.0.0.1, one glommio executor per test.

use super::queue::PEER_QUEUE_MESSAGES_MAX;
use super::wire::{Handshake, FRAME_BYTES_MAX};
use super::{PeerAddress, PeerTls, PeerTransport, TransportConfig};
use bytes::Bytes;
use futures_lite::io::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use std::cell::RefCell;
use std::future::Future;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const CLUSTER: u64 = 0xc1_57e4;
/// How long a test waits for something that should happen well before.
const PATIENCE: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(10);

fn run<F, Fut>(test: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + 'static,
{
    glommio::LocalExecutorBuilder::default()
        .io_memory(1 << 20)
        .spawn(test)
        .expect("executor starts")
        .join()
        .expect("test executor finished");
}

type Inbox = Rc<RefCell<Vec<(u64, Bytes)>>>;

struct Member {
    transport: PeerTransport,
    inbox: Inbox,
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn free_port() -> u16 {
    let probe = std::net::TcpListener::bind(loopback(0)).expect("probe bind");
    probe.local_addr().expect("probe address").port()
}

fn start(id: u64, cluster_id: u64, listen: SocketAddr, peers: Vec<PeerAddress>) -> Member {
    let inbox: Inbox = Rc::default();
    let sink = inbox.clone();
    let transport = PeerTransport::start(
        TransportConfig {
            local_id: id,
            cluster_id,
            listen,
            peers,
            tls: PeerTls::plain(),
            hashes: None,
        },
        Rc::new(move |from, message| sink.borrow_mut().push((from, message))),
    )
    .expect("transport starts");
    Member { transport, inbox }
}

/// Starts on `listen`, retrying while a just-stopped listener still holds the port.
async fn start_when_free(id: u64, listen: SocketAddr, peers: Vec<PeerAddress>) -> Member {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let inbox: Inbox = Rc::default();
        let sink = inbox.clone();
        let started = PeerTransport::start(
            TransportConfig {
                local_id: id,
                cluster_id: CLUSTER,
                listen,
                peers: peers.clone(),
                tls: PeerTls::plain(),
                hashes: None,
            },
            Rc::new(move |from, message| sink.borrow_mut().push((from, message))),
        );
        match started {
            Ok(transport) => return Member { transport, inbox },
            Err(error) if Instant::now() < deadline => {
                assert_eq!(error.kind(), std::io::ErrorKind::AddrInUse);
                glommio::timer::sleep(POLL).await;
            }
            Err(error) => panic!("cannot rebind {listen}: {error}"),
        }
    }
}

fn address_of(id: u64, member: &Member) -> PeerAddress {
    PeerAddress::plain(id, member.transport.local_address())
}

async fn wait_until(mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + PATIENCE;
    while Instant::now() < deadline {
        if condition() {
            return true;
        }
        glommio::timer::sleep(POLL).await;
    }
    condition()
}

fn message(text: String) -> Bytes {
    Bytes::from(text.into_bytes())
}

fn texts_from(inbox: &Inbox, from: u64) -> Vec<String> {
    inbox
        .borrow()
        .iter()
        .filter(|(sender, _)| *sender == from)
        .map(|(_, bytes)| String::from_utf8_lossy(bytes).into_owned())
        .collect()
}

/// Expects the far end to close `stream` (EOF or reset) rather than keep it open.
async fn assert_closed_by_peer(stream: &mut TcpStream) {
    let mut buffer = [0u8; 16];
    let outcome = futures_lite::future::or(async { Some(stream.read(&mut buffer).await) }, async {
        glommio::timer::sleep(PATIENCE).await;
        None
    })
    .await;
    match outcome {
        Some(Ok(0)) | Some(Err(_)) => {}
        Some(Ok(count)) => panic!("transport wrote {count} bytes on an inbound connection"),
        None => panic!("connection still open after {PATIENCE:?}"),
    }
}

#[test]
fn three_members_exchange_messages_in_order() {
    run(|| async {
        let members: Vec<Member> = (1..=3)
            .map(|id| start(id, CLUSTER, loopback(0), Vec::new()))
            .collect();
        for (index, member) in members.iter().enumerate() {
            for (other_index, other) in members.iter().enumerate() {
                if index != other_index {
                    member
                        .transport
                        .add_peer(address_of(other_index as u64 + 1, other));
                }
            }
        }
        const COUNT: usize = 500;
        for sequence in 0..COUNT {
            for (index, member) in members.iter().enumerate() {
                let from = index as u64 + 1;
                for to in (1..=3u64).filter(|to| *to != from) {
                    member
                        .transport
                        .send(to, message(format!("{from}->{to} #{sequence}")));
                }
            }
            if sequence % 100 == 0 {
                glommio::yield_if_needed().await;
            }
        }
        let all_arrived = wait_until(|| {
            members
                .iter()
                .all(|member| member.inbox.borrow().len() == 2 * COUNT)
        })
        .await;
        assert!(all_arrived, "not every message arrived");
        for (index, member) in members.iter().enumerate() {
            let to = index as u64 + 1;
            for from in (1..=3u64).filter(|from| *from != to) {
                let expected: Vec<String> = (0..COUNT)
                    .map(|sequence| format!("{from}->{to} #{sequence}"))
                    .collect();
                assert_eq!(texts_from(&member.inbox, from), expected);
            }
            assert_eq!(member.transport.dropped_messages(), 0);
            let mut others: Vec<u64> = (1..=3).filter(|id| *id != to).collect();
            others.sort_unstable();
            assert_eq!(member.transport.connected_peers(), others);
        }
        for member in &members {
            member.transport.stop();
        }
    });
}

#[test]
fn peer_started_later_is_reached_after_backoff() {
    run(|| async {
        let late_address = loopback(free_port());
        let early = start(
            1,
            CLUSTER,
            loopback(0),
            vec![PeerAddress::plain(2, late_address)],
        );
        for sequence in 0..10 {
            early
                .transport
                .send(2, message(format!("early #{sequence}")));
        }
        // Several failed attempts: the backoff has grown past its minimum.
        glommio::timer::sleep(Duration::from_millis(400)).await;
        assert!(early.transport.connected_peers().is_empty());
        assert_eq!(early.transport.queued_messages(2), 10);
        let late = start(2, CLUSTER, late_address, vec![address_of(1, &early)]);
        assert!(wait_until(|| late.inbox.borrow().len() == 10).await);
        let expected: Vec<String> = (0..10)
            .map(|sequence| format!("early #{sequence}"))
            .collect();
        assert_eq!(texts_from(&late.inbox, 1), expected);
        assert_eq!(early.transport.connected_peers(), vec![2]);
        late.transport.send(1, Bytes::from_static(b"hello back"));
        assert!(wait_until(|| early.inbox.borrow().len() == 1).await);
        early.transport.stop();
        late.transport.stop();
    });
}

#[test]
fn peer_that_restarts_gets_later_messages() {
    run(|| async {
        let a = start(1, CLUSTER, loopback(0), Vec::new());
        let b = start(2, CLUSTER, loopback(0), vec![address_of(1, &a)]);
        let b_address = b.transport.local_address();
        a.transport.add_peer(address_of(2, &b));
        a.transport.send(2, Bytes::from_static(b"before"));
        assert!(wait_until(|| b.inbox.borrow().len() == 1).await);
        assert!(wait_until(|| a.transport.connected_peers() == vec![2]).await);

        b.transport.stop();
        drop(b);
        // The sender notices the close without having to write into the dead socket.
        assert!(wait_until(|| a.transport.connected_peers().is_empty()).await);
        a.transport.send(2, Bytes::from_static(b"while away"));

        let b = start_when_free(2, b_address, vec![address_of(1, &a)]).await;
        a.transport.send(2, Bytes::from_static(b"after"));
        assert!(wait_until(|| b.inbox.borrow().len() == 2).await);
        assert_eq!(texts_from(&b.inbox, 1), vec!["while away", "after"]);
        assert!(wait_until(|| a.transport.connected_peers() == vec![2]).await);
        // And the other direction works from the new incarnation.
        b.transport.send(1, Bytes::from_static(b"back again"));
        assert!(wait_until(|| texts_from(&a.inbox, 2) == vec!["back again"]).await);
        a.transport.stop();
        b.transport.stop();
    });
}

#[test]
fn full_queue_drops_oldest_instead_of_blocking() {
    run(|| async {
        let absent = loopback(free_port());
        let a = start(1, CLUSTER, loopback(0), vec![PeerAddress::plain(2, absent)]);
        const EXTRA: usize = 100;
        let started = Instant::now();
        for sequence in 0..PEER_QUEUE_MESSAGES_MAX + EXTRA {
            a.transport.send(2, message(format!("#{sequence}")));
        }
        assert!(started.elapsed() < Duration::from_secs(1));
        assert_eq!(a.transport.dropped_messages(), EXTRA as u64);
        assert_eq!(a.transport.queued_messages(2), PEER_QUEUE_MESSAGES_MAX);
        // The byte bound: a message larger than the whole queue is dropped on its own.
        a.transport
            .send(2, Bytes::from(vec![0u8; super::PEER_QUEUE_BYTES_MAX + 1]));
        assert_eq!(a.transport.dropped_messages(), EXTRA as u64 + 1);
        // Messages for unknown members are dropped too.
        a.transport.send(99, Bytes::from_static(b"nobody"));
        assert_eq!(a.transport.dropped_messages(), EXTRA as u64 + 2);

        let b = start(2, CLUSTER, absent, Vec::new());
        assert!(wait_until(|| b.inbox.borrow().len() == PEER_QUEUE_MESSAGES_MAX).await);
        let received = texts_from(&b.inbox, 1);
        assert_eq!(received[0], format!("#{EXTRA}"));
        assert_eq!(
            received[PEER_QUEUE_MESSAGES_MAX - 1],
            format!("#{}", PEER_QUEUE_MESSAGES_MAX + EXTRA - 1)
        );
        a.transport.stop();
        b.transport.stop();
    });
}

/// Collects everything `tracing` writes on this thread.
#[derive(Clone, Default)]
struct CapturedLog(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for CapturedLog {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log lock").extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl CapturedLog {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("log lock")).into_owned()
    }
}

#[test]
fn wrong_cluster_id_is_refused_and_logged() {
    run(|| async {
        let log = CapturedLog::default();
        let writer = log.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);

        let ours: u64 = 0xabc1;
        let theirs: u64 = 0xdef2;
        let a = start(1, ours, loopback(0), Vec::new());
        let stranger = start(2, theirs, loopback(0), vec![address_of(1, &a)]);
        stranger.transport.send(1, Bytes::from_static(b"let me in"));
        assert!(wait_until(|| log.text().contains("cluster ID mismatch")).await);
        let line = log
            .text()
            .lines()
            .find(|line| line.contains("cluster ID mismatch"))
            .map(str::to_owned)
            .unwrap_or_default();
        assert!(line.contains("ERROR"), "{line}");
        assert!(line.contains("abc1") && line.contains("def2"), "{line}");

        // A raw connection with the wrong cluster id is closed.
        let mut raw = TcpStream::connect(a.transport.local_address())
            .await
            .expect("connect");
        let handshake = Handshake {
            cluster_id: theirs,
            from_id: 3,
            to_id: 1,
        };
        raw.write_all(&handshake.encode()).await.expect("write");
        raw.write_all(&[0, 0, 0, 1, 42]).await.expect("write");
        assert_closed_by_peer(&mut raw).await;
        glommio::timer::sleep(Duration::from_millis(200)).await;
        assert!(a.inbox.borrow().is_empty());
        a.transport.stop();
        stranger.transport.stop();
    });
}

#[test]
fn bad_bytes_close_only_their_connection() {
    run(|| async {
        let a = start(1, CLUSTER, loopback(0), Vec::new());
        let b = start(2, CLUSTER, loopback(0), vec![address_of(1, &a)]);
        a.transport.add_peer(address_of(2, &b));
        b.transport.send(1, Bytes::from_static(b"first"));
        assert!(wait_until(|| a.inbox.borrow().len() == 1).await);
        let target = a.transport.local_address();

        // Garbage instead of a handshake.
        let mut garbage = TcpStream::connect(target).await.expect("connect");
        garbage
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nxxxxxx")
            .await
            .expect("write");
        assert_closed_by_peer(&mut garbage).await;

        // A handshake for another member.
        let mut misdirected = TcpStream::connect(target).await.expect("connect");
        let handshake = Handshake {
            cluster_id: CLUSTER,
            from_id: 3,
            to_id: 7,
        };
        misdirected
            .write_all(&handshake.encode())
            .await
            .expect("write");
        assert_closed_by_peer(&mut misdirected).await;

        // A good handshake, a good frame, then a frame length over the limit.
        let mut oversized = TcpStream::connect(target).await.expect("connect");
        let handshake = Handshake {
            cluster_id: CLUSTER,
            from_id: 3,
            to_id: 1,
        };
        let mut bytes = handshake.encode().to_vec();
        bytes.extend_from_slice(&[0, 0, 0, 2, b'o', b'k']);
        bytes.extend_from_slice(&(FRAME_BYTES_MAX as u32 + 1).to_be_bytes());
        oversized.write_all(&bytes).await.expect("write");
        assert_closed_by_peer(&mut oversized).await;
        assert_eq!(texts_from(&a.inbox, 3), vec!["ok"]);

        // The maximal length value, with a few payload bytes behind it.
        let mut huge = TcpStream::connect(target).await.expect("connect");
        let mut bytes = handshake.encode().to_vec();
        bytes.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 1, 2, 3]);
        huge.write_all(&bytes).await.expect("write");
        assert_closed_by_peer(&mut huge).await;

        // A handshake cut short.
        let mut short = TcpStream::connect(target).await.expect("connect");
        short.write_all(b"CPRT").await.expect("write");
        drop(short);

        // The real peer's connection was never disturbed.
        b.transport.send(1, Bytes::from_static(b"second"));
        assert!(wait_until(|| texts_from(&a.inbox, 2) == vec!["first", "second"]).await);
        a.transport.send(2, Bytes::from_static(b"reply"));
        assert!(wait_until(|| b.inbox.borrow().len() == 1).await);
        assert_eq!(b.transport.connected_peers(), vec![1]);
        a.transport.stop();
        b.transport.stop();
    });
}

/// A transport that answers hash queries with a fixed hash, whatever the revision.
fn start_hashing(id: u64, peers: Vec<PeerAddress>) -> Member {
    use super::hash_wire::{HashAnswer, HashReply};
    let inbox: Inbox = Rc::default();
    let sink = inbox.clone();
    let transport = PeerTransport::start(
        TransportConfig {
            local_id: id,
            cluster_id: CLUSTER,
            listen: loopback(0),
            peers,
            tls: PeerTls::plain(),
            hashes: Some(Arc::new(|revision| HashAnswer {
                member_id: 0,
                current_revision: 50,
                reply: HashReply::Hash {
                    hash: 0xabcd,
                    compact_revision: -1,
                    hash_revision: revision,
                },
            })),
        },
        Rc::new(move |from, message| sink.borrow_mut().push((from, message))),
    )
    .expect("transport starts");
    Member { transport, inbox }
}

/// Sends `query`, reads one whole hash answer and expects the connection closed after it.
async fn hash_answer_to(target: SocketAddr, query: &[u8]) -> super::hash_wire::HashAnswer {
    use super::hash_wire::{HashAnswer, HASH_ANSWER_BYTES};
    let mut stream = TcpStream::connect(target).await.expect("connect");
    stream.write_all(query).await.expect("write");
    let mut bytes = [0u8; HASH_ANSWER_BYTES];
    stream.read_exact(&mut bytes).await.expect("answer");
    assert_closed_by_peer(&mut stream).await;
    HashAnswer::decode(&bytes).expect("a well-formed answer")
}

#[test]
fn hash_queries_are_answered_and_bad_ones_close_only_their_connection() {
    use super::hash_wire::{encode_hash_query, HashReply};
    use super::wire::Purpose;
    run(|| async {
        let a = start_hashing(1, Vec::new());
        let b = start(2, CLUSTER, loopback(0), vec![address_of(1, &a)]);
        b.transport.send(1, Bytes::from_static(b"first"));
        assert!(wait_until(|| a.inbox.borrow().len() == 1).await);
        let target = a.transport.local_address();
        let from = |from_id: u64, to_id: u64, cluster_id: u64| Handshake {
            cluster_id,
            from_id,
            to_id,
        };

        // A good query: our id, our current revision, the hash at the revision asked.
        let answer = hash_answer_to(target, &encode_hash_query(&from(2, 1, CLUSTER), 42)).await;
        assert_eq!(answer.member_id, 1);
        assert_eq!(answer.current_revision, 50);
        assert_eq!(
            answer.reply,
            HashReply::Hash {
                hash: 0xabcd,
                compact_revision: -1,
                hash_revision: 42
            }
        );

        // Another cluster is told so, without a hash.
        let answer = hash_answer_to(target, &encode_hash_query(&from(2, 1, 0xdead), 42)).await;
        assert_eq!(answer.reply, HashReply::ClusterMismatch);
        assert_eq!(answer.member_id, 1);

        // Addressed to another member, or from nobody, or from ourselves: closed unanswered.
        for handshake in [
            from(2, 7, CLUSTER),
            from(0, 1, CLUSTER),
            from(1, 1, CLUSTER),
        ] {
            let mut stream = TcpStream::connect(target).await.expect("connect");
            stream
                .write_all(&encode_hash_query(&handshake, 42))
                .await
                .expect("write");
            assert_closed_by_peer(&mut stream).await;
        }

        // The revision cut short, then the connection half-closed by us.
        let mut short = TcpStream::connect(target).await.expect("connect");
        let query = encode_hash_query(&from(2, 1, CLUSTER), 42);
        short.write_all(&query[..35]).await.expect("write");
        short
            .shutdown(std::net::Shutdown::Write)
            .await
            .expect("half close");
        assert_closed_by_peer(&mut short).await;

        // Unknown flags next to the query flag.
        let mut unknown = from(2, 1, CLUSTER).encode_for(Purpose::HashQuery).to_vec();
        unknown[6] |= 0x04;
        unknown.extend_from_slice(&[0; 8]);
        let mut stream = TcpStream::connect(target).await.expect("connect");
        stream.write_all(&unknown).await.expect("write");
        assert_closed_by_peer(&mut stream).await;

        // Pseudo-random bytes after a hash query handshake, and random whole preambles: at
        // worst an answer, then the close.
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for round in 0..32 {
            let mut bytes = if round % 2 == 0 {
                from(2, 1, CLUSTER).encode_for(Purpose::HashQuery).to_vec()
            } else {
                Vec::new()
            };
            let extra = (next() % 64) as usize;
            bytes.extend((0..extra).map(|_| next() as u8));
            let mut stream = TcpStream::connect(target).await.expect("connect");
            stream.write_all(&bytes).await.expect("write");
            stream
                .shutdown(std::net::Shutdown::Write)
                .await
                .expect("half close");
            let mut sink = Vec::new();
            let _ = stream.read_to_end(&mut sink).await;
            assert!(sink.is_empty() || sink.len() == super::hash_wire::HASH_ANSWER_BYTES);
        }

        // The real peer's raft connection was never disturbed, nor replaced by the queries.
        b.transport.send(1, Bytes::from_static(b"second"));
        assert!(wait_until(|| texts_from(&a.inbox, 2) == vec!["first", "second"]).await);
        a.transport.stop();
        b.transport.stop();
    });
}

#[test]
fn a_member_without_a_hash_source_answers_unavailable() {
    use super::hash_wire::{encode_hash_query, HashReply};
    run(|| async {
        let a = start(1, CLUSTER, loopback(0), Vec::new());
        let query = encode_hash_query(
            &Handshake {
                cluster_id: CLUSTER,
                from_id: 2,
                to_id: 1,
            },
            3,
        );
        let answer = hash_answer_to(a.transport.local_address(), &query).await;
        assert_eq!(answer.reply, HashReply::Unavailable);
        a.transport.stop();
    });
}
