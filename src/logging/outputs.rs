//! `--log-outputs`: stderr, stdout and files (opened for appending, created when missing, as
//! zap opens its file sinks). Every line goes to every output; one lock keeps lines from
//! different threads whole.

use super::settings::Output;
use std::fs::File;
use std::io::Write;
use std::sync::Mutex;

enum Sink {
    Stderr,
    Stdout,
    File(File),
}

/// The opened outputs.
pub struct Outputs {
    sinks: Mutex<Vec<Sink>>,
}

impl Outputs {
    /// Opens every output; a file that cannot be opened is refused with zap's text
    /// (`open sink "PATH": open PATH: REASON`).
    pub fn open(outputs: &[Output]) -> Result<Outputs, String> {
        let mut sinks = Vec::with_capacity(outputs.len());
        for output in outputs {
            sinks.push(match output {
                Output::Stderr => Sink::Stderr,
                Output::Stdout => Sink::Stdout,
                Output::File(path) => Sink::File(
                    std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(path)
                        .map_err(|error| {
                            format!("open sink {path:?}: open {path}: {}", go_io_error(&error))
                        })?,
                ),
            });
        }
        Ok(Outputs {
            sinks: Mutex::new(sinks),
        })
    }

    /// Writes one whole line to every output. A failed write is dropped: logging never stops
    /// the server (zap's `ErrorOutput` would report it to stderr, which may be what failed).
    pub fn write_line(&self, line: &[u8]) {
        let mut sinks = match self.sinks.lock() {
            Ok(sinks) => sinks,
            Err(poisoned) => poisoned.into_inner(),
        };
        for sink in sinks.iter_mut() {
            let _ignored = match sink {
                Sink::Stderr => std::io::stderr().lock().write_all(line),
                Sink::Stdout => {
                    let mut stdout = std::io::stdout().lock();
                    stdout.write_all(line).and_then(|()| stdout.flush())
                }
                Sink::File(file) => file.write_all(line),
            };
        }
    }
}

/// The reason as Go's `os` package words it (`no such file or directory`), without Rust's
/// ` (os error N)` suffix.
fn go_io_error(error: &std::io::Error) -> String {
    let text = error.to_string();
    let lowercase_first = |text: &str| {
        let mut characters = text.chars();
        match characters.next() {
            Some(first) => first.to_lowercase().chain(characters).collect(),
            None => String::new(),
        }
    };
    match text.find(" (os error") {
        Some(at) => lowercase_first(&text[..at]),
        None => lowercase_first(&text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_directory_is_refused_as_zap_words_it() {
        let error = Outputs::open(&[Output::File("/nonexistent/dir/x.log".to_string())])
            .err()
            .unwrap_or_default();
        assert_eq!(
            error,
            "open sink \"/nonexistent/dir/x.log\": open /nonexistent/dir/x.log: no such file or directory"
        );
    }
}
