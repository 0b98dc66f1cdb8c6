//! The Watch service: one bidi stream carries many watchers. Requests (create, cancel,
//! progress) go to the shard's hub; the hub queues responses on the stream's outbox, which this
//! call drains at the pace the client reads.

use crate::grpc::call::{RequestStream, ResponseSink};
use crate::grpc::Status;
use crate::shard::{ShardContext, Shutdown};
use crate::watch::StreamId;
use capstan_proto::etcdserverpb::watch_request::RequestUnion;
use capstan_proto::etcdserverpb::{WatchRequest, WatchResponse};
use prost::Message;
use std::rc::Rc;
use std::time::Duration;

/// Queued responses of one stream written together, up to this many bytes.
const SEND_BATCH_BYTES_MAX: usize = 64 * 1024;
/// How often a shard feeds catching-up watchers while it has any.
const CATCH_UP_INTERVAL_BUSY: Duration = Duration::from_millis(2);
/// How often a shard looks for new catching-up watchers while it has none.
const CATCH_UP_INTERVAL_IDLE: Duration = Duration::from_millis(10);

/// Closes the stream's watchers when the call ends, however it ends.
struct OpenStream<'a> {
    context: &'a ShardContext,
    stream: StreamId,
}

impl Drop for OpenStream<'_> {
    fn drop(&mut self) {
        self.context
            .watch_hub
            .borrow_mut()
            .close_stream(self.stream);
    }
}

impl ShardContext {
    pub async fn watch(
        &self,
        mut requests: RequestStream<WatchRequest>,
        responses: ResponseSink<WatchResponse>,
    ) -> Result<(), Status> {
        let (stream, outbox) = self.watch_hub.borrow_mut().open_stream();
        let _open = OpenStream {
            context: self,
            stream,
        };
        let receiving = async {
            loop {
                outbox.wait_for_room().await;
                match requests.next().await {
                    Some(request) => self.on_watch_request(stream, request?),
                    None => break,
                }
            }
            // A half-closed request side keeps its watchers (as etcd does); the call ends when
            // the client cancels or goes away.
            responses.closed().await;
            Ok(())
        };
        let sending = async {
            let mut batch = Vec::new();
            while let Some(response) = outbox.pop().await {
                let mut batch_bytes = response.encoded_len();
                batch.push(response);
                while batch_bytes < SEND_BATCH_BYTES_MAX {
                    let Some(more) = outbox.try_pop() else {
                        break;
                    };
                    batch_bytes += more.encoded_len();
                    batch.push(more);
                }
                responses.send_batch(&batch).await?;
                batch.clear();
            }
            Ok(())
        };
        futures_lite::future::or(receiving, sending).await
    }

    fn on_watch_request(&self, stream: StreamId, request: WatchRequest) {
        let view = self.read_view.load();
        let mut hub = self.watch_hub.borrow_mut();
        match request.request_union {
            Some(RequestUnion::CreateRequest(create)) => hub.create(stream, &create, &view),
            Some(RequestUnion::CancelRequest(cancel)) => hub.cancel(stream, cancel.watch_id, &view),
            Some(RequestUnion::ProgressRequest(_)) => hub.request_progress(stream),
            None => {}
        }
    }
}

/// Feeds this shard's catching-up watchers from the newest read view.
pub async fn catch_up_loop(context: Rc<ShardContext>, shutdown: Shutdown) {
    while !shutdown.is_triggered() {
        let busy = context.watch_hub.borrow().has_catching_up();
        if busy {
            let view = context.read_view.load_full();
            context.watch_hub.borrow_mut().catch_up_step(&view);
            glommio::timer::sleep(CATCH_UP_INTERVAL_BUSY).await;
        } else {
            glommio::timer::sleep(CATCH_UP_INTERVAL_IDLE).await;
        }
    }
}

/// Sends progress notifications every `--watch-progress-notify-interval`.
pub async fn progress_loop(context: Rc<ShardContext>, shutdown: Shutdown) {
    let interval = context.config.watch_progress_notify_interval;
    loop {
        let stopped = futures_lite::future::or(
            async {
                shutdown.wait().await;
                true
            },
            async {
                glommio::timer::sleep(interval).await;
                false
            },
        )
        .await;
        if stopped {
            return;
        }
        context.watch_hub.borrow_mut().progress_tick();
    }
}
