//! The `tracing` layer: each event becomes a [`Record`], encoded as a JSON or console line and
//! written to every output. Encoding uses a per-thread buffer, so a line costs one write.

use super::outputs::Outputs;
use super::record::Record;
use super::settings::LogFormat;
use super::timestamp::write_utc_micros;
use std::cell::RefCell;
use std::time::SystemTime;
use tracing_subscriber::layer::Context;

/// Lines longer than this do not keep their buffer for the next event on the thread.
const KEPT_BUFFER_BYTES_MAX: usize = 64 * 1024;

thread_local! {
    static LINE_BUFFER: RefCell<(String, String)> = const { RefCell::new((String::new(), String::new())) };
}

/// Writes events as etcd's zap logger does.
pub struct ZapLayer {
    format: LogFormat,
    outputs: Outputs,
}

impl ZapLayer {
    pub fn new(format: LogFormat, outputs: Outputs) -> ZapLayer {
        ZapLayer { format, outputs }
    }

    fn write(&self, record: &Record) {
        LINE_BUFFER.with(|buffers| {
            let Ok(mut buffers) = buffers.try_borrow_mut() else {
                return; // An event logged while encoding one: dropped rather than deadlocked.
            };
            let (timestamp, line) = &mut *buffers;
            timestamp.clear();
            line.clear();
            write_utc_micros(SystemTime::now(), timestamp);
            match self.format {
                LogFormat::Json => super::json::write_line(record, timestamp, line),
                LogFormat::Console => super::console::write_line(record, timestamp, line),
            }
            self.outputs.write_line(line.as_bytes());
            if line.capacity() > KEPT_BUFFER_BYTES_MAX {
                *line = String::new();
            }
        });
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for ZapLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _context: Context<'_, S>) {
        self.write(&Record::from_event(event));
    }
}
