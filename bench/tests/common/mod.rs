//! A tiny in-process gRPC server for the tool's tests (tokio + h2): it answers KV Range and
//! Put with empty successes, answers every other method UNIMPLEMENTED (trailers only, as
//! Capstan does), and can stall every answer for a while once a given number of requests has
//! arrived — a stand-in for a server paused with SIGSTOP.

use bytes::{BufMut, Bytes, BytesMut};
use capstan_proto::etcdserverpb::{PutResponse, RangeResponse, ResponseHeader};
use capstan_proto::method::{KV_PUT, KV_RANGE};
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use prost::Message;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

/// When and how long to stall.
#[derive(Debug, Clone, Copy)]
pub struct Stall {
    /// The request (counted from 1) that starts the stall.
    pub at_request: u64,
    pub duration: Duration,
}

struct State {
    requests: AtomicU64,
    stall: Option<Stall>,
    stalled_until: Mutex<Option<Instant>>,
}

/// A running fake server; it stops when the test's runtime ends.
pub struct FakeServer {
    pub address: SocketAddr,
}

impl FakeServer {
    pub async fn start(stall: Option<Stall>) -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("local address");
        let state = Arc::new(State {
            requests: AtomicU64::new(0),
            stall,
            stalled_until: Mutex::new(None),
        });
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let state = state.clone();
                tokio::spawn(serve_connection(socket, state));
            }
        });
        FakeServer { address }
    }
}

async fn serve_connection(socket: tokio::net::TcpStream, state: Arc<State>) {
    let _ = socket.set_nodelay(true);
    let Ok(mut connection) = h2::server::handshake(socket).await else {
        return;
    };
    while let Some(Ok((request, respond))) = connection.accept().await {
        let state = state.clone();
        tokio::spawn(async move {
            let path = request.uri().path().to_string();
            let mut body = request.into_body();
            while let Some(Ok(chunk)) = body.data().await {
                let _ = body.flow_control().release_capacity(chunk.len());
            }
            answer(&path, respond, &state).await;
        });
    }
}

async fn wait_out_stall(state: &State) {
    let count = state.requests.fetch_add(1, Ordering::SeqCst) + 1;
    let until = {
        let mut stalled_until = state.stalled_until.lock().expect("stall lock");
        if let Some(stall) = state.stall {
            if count == stall.at_request {
                *stalled_until = Some(Instant::now() + stall.duration);
            }
        }
        *stalled_until
    };
    if let Some(until) = until {
        tokio::time::sleep_until(until.into()).await;
    }
}

fn framed<M: Message>(message: &M) -> Bytes {
    let mut buffer = BytesMut::new();
    buffer.put_u8(0);
    buffer.put_u32(message.encoded_len() as u32);
    message.encode(&mut buffer).expect("encode");
    buffer.freeze()
}

async fn answer(path: &str, mut respond: h2::server::SendResponse<Bytes>, state: &State) {
    let header = Some(ResponseHeader {
        revision: 1,
        ..Default::default()
    });
    let message = match path {
        p if p == KV_RANGE => framed(&RangeResponse {
            header,
            ..Default::default()
        }),
        p if p == KV_PUT => framed(&PutResponse {
            header,
            ..Default::default()
        }),
        _ => {
            let response = Response::builder()
                .status(StatusCode::OK)
                .header("content-type", "application/grpc")
                .header("grpc-status", "12")
                .header("grpc-message", "unknown%20service")
                .body(())
                .expect("response");
            let _ = respond.send_response(response, true);
            return;
        }
    };
    wait_out_stall(state).await;
    let response = Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/grpc")
        .body(())
        .expect("response");
    let Ok(mut stream) = respond.send_response(response, false) else {
        return;
    };
    let _ = stream.send_data(message, false);
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    let _ = stream.send_trailers(trailers);
}
