//! Log setup: `tracing` to stderr, as text or JSON lines, level from `RUST_LOG` or `log.level`.
//!
//! Invariants:
//! - Nothing bizrelay logs carries a webhook URL, a signature, the admin token or an unmasked
//!   phone number (a test runs the binary and searches its whole log for them). The HTTP
//!   libraries are held at `warn` by default because their debug output names hosts, and
//!   handlebars is held at `warn` whatever `log.level` or `RUST_LOG` say: at debug it logs
//!   every helper parameter, phone numbers included.
//! - Logging never panics and never blocks the process. Lines go to stderr from a thread of
//!   their own through a bounded queue: a line that finds the queue full (stderr is stuck) or
//!   that stderr refuses (the reader of the pipe is gone) is dropped and counted
//!   ([`lost_lines`], the `bizrelay_log_lines_dropped_total` metric). SIGTERM and everything
//!   else keep working whatever happens to stderr.
//! - Only the first line (`bizrelay starting`, when asked for) is written synchronously: if
//!   stderr cannot take it, [`init`] says so and `serve` refuses to run unseen.
//! - Text logs are coloured only when stderr is a terminal (and `NO_COLOR` is unset).
//!
//! The queue is written here rather than taken from tracing-appender, whose worker guard and
//! flush print with `println!`/`eprintln!`, which panic on a closed pipe.

use std::borrow::Cow;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::{Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::LogFormat;

/// Dependencies quieter than our own default level.
const QUIET: &str =
    "hyper=warn,hyper_util=warn,reqwest=warn,rustls=warn,h2=warn,notify=warn,warp=warn";

/// Lines waiting for stderr at most; past that, new lines are dropped (and counted).
const QUEUE_LINES: usize = 10_000;

/// How long the last lines may take to reach stderr when the process ends.
const FLUSH_AT_EXIT: Duration = Duration::from_secs(1);

/// Longest value from a request logged as it is (`hookId`); `hooksId` is clipped to the same
/// length when parsed. A 1 MB id would otherwise add megabytes of log per POST and per retry.
pub const MAX_LOGGED_VALUE: usize = 256;

static LOST_TO_WRITE_ERRORS: AtomicU64 = AtomicU64::new(0);
static LOST_TO_FULL_QUEUE: AtomicU64 = AtomicU64::new(0);

/// Log lines dropped so far in this process: (stderr refused them, the queue was full).
pub fn lost_lines() -> (u64, u64) {
    (
        LOST_TO_WRITE_ERRORS.load(Ordering::Relaxed),
        LOST_TO_FULL_QUEUE.load(Ordering::Relaxed),
    )
}

/// A value from a request, clipped for a log line (ending with `…` when cut).
pub fn clip(value: &str) -> Cow<'_, str> {
    if value.len() <= MAX_LOGGED_VALUE {
        Cow::Borrowed(value)
    } else {
        Cow::Owned(crate::text::truncate(value, MAX_LOGGED_VALUE))
    }
}

/// Why logging could not start.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("cannot write logs to stderr: {0}")]
    Unwritable(std::io::Error),
}

/// Keeps the log writer; dropping it waits (at most [`FLUSH_AT_EXIT`]) for queued lines to
/// reach stderr. Hold it until the process ends.
pub struct LogGuard {
    queue: Option<(SyncSender<Vec<u8>>, Receiver<()>)>,
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        let Some((queue, written)) = self.queue.take() else {
            return;
        };
        // An empty line asks the writer to report once everything before it is written.
        let deadline = Instant::now() + FLUSH_AT_EXIT;
        loop {
            match queue.try_send(Vec::new()) {
                Ok(()) => break,
                Err(TrySendError::Full(_)) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(_) => return,
            }
        }
        let _ = written.recv_timeout(deadline.saturating_duration_since(Instant::now()));
    }
}

/// Hands each formatted line to the writer thread without ever waiting for it.
#[derive(Clone)]
struct QueueWriter(SyncSender<Vec<u8>>);

impl Write for QueueWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if !buf.is_empty() && self.0.try_send(buf.to_vec()).is_err() {
            LOST_TO_FULL_QUEUE.fetch_add(1, Ordering::Relaxed);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for QueueWriter {
    type Writer = QueueWriter;
    fn make_writer(&'a self) -> QueueWriter {
        self.clone()
    }
}

/// Starts the thread that writes queued lines to stderr; `None` if no thread can be started.
fn start_writer() -> Option<(QueueWriter, LogGuard)> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(QUEUE_LINES);
    let (written_tx, written_rx) = std::sync::mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("bizrelay-log".into())
        .spawn(move || {
            let mut stderr = std::io::stderr();
            for line in rx {
                if line.is_empty() {
                    let _ = stderr.flush();
                    let _ = written_tx.send(());
                } else if stderr.write_all(&line).is_err() {
                    LOST_TO_WRITE_ERRORS.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
        .ok()?;
    Some((
        QueueWriter(tx.clone()),
        LogGuard {
            queue: Some((tx, written_rx)),
        },
    ))
}

/// Writes straight to stderr, keeping the first error: for the one line written synchronously.
#[derive(Clone, Default)]
struct FirstLine(Arc<Mutex<Option<std::io::Error>>>);

impl Write for FirstLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Err(e) = std::io::stderr().write_all(buf)
            && let Ok(mut first) = self.0.lock()
        {
            first.get_or_insert(e);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for FirstLine {
    type Writer = FirstLine;
    fn make_writer(&'a self) -> FirstLine {
        self.clone()
    }
}

fn filter(level: &str) -> EnvFilter {
    match std::env::var("RUST_LOG") {
        Ok(v) if !v.trim().is_empty() => EnvFilter::new(v),
        _ => EnvFilter::new(format!("{level},{QUIET}")),
    }
}

fn colours() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// The subscriber for a format and writer: the level filter, then handlebars held at `warn`.
fn subscriber<W>(format: LogFormat, level: &str, writer: W) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let handlebars_at_warn =
        filter_fn(|meta| !meta.target().starts_with("handlebars") || *meta.level() <= Level::WARN);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter(level))
        .with_writer(writer)
        .with_target(false)
        .with_ansi(colours())
        .log_internal_errors(false);
    match format {
        LogFormat::Text => Box::new(builder.finish().with(handlebars_at_warn)),
        LogFormat::Json => Box::new(
            builder
                .json()
                .flatten_event(true)
                .finish()
                .with(handlebars_at_warn),
        ),
    }
}

/// Installs the global subscriber (once per process; later calls only return a guard). With
/// `announce`, first writes `bizrelay starting` synchronously and fails if stderr refuses it.
pub fn init(format: LogFormat, level: &str, announce: bool) -> Result<LogGuard, LogError> {
    if announce {
        let first = FirstLine::default();
        tracing::subscriber::with_default(subscriber(format, level, first.clone()), || {
            tracing::info!(
                version = env!("CARGO_PKG_VERSION"),
                pid = std::process::id(),
                "bizrelay starting"
            );
        });
        if let Some(e) = first.0.lock().ok().and_then(|mut e| e.take()) {
            return Err(LogError::Unwritable(e));
        }
    }
    let Some((writer, guard)) = start_writer() else {
        // No thread for the writer: write in place (errors are still dropped and counted).
        let _ = subscriber(format, level, FirstLine::default()).try_init();
        return Ok(LogGuard { queue: None });
    };
    let _ = subscriber(format, level, writer).try_init();
    Ok(guard)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_values_are_clipped_for_logs() {
        assert!(matches!(clip("h-7f3a"), Cow::Borrowed("h-7f3a")));
        let long = "x".repeat(1_000_000);
        let clipped = clip(&long);
        assert_eq!(clipped.chars().count(), MAX_LOGGED_VALUE);
        assert!(clipped.ends_with(crate::text::MARKER));
        let korean = "검".repeat(200);
        assert_eq!(clip(&korean).chars().count(), 200);
    }

    #[test]
    fn a_full_queue_drops_and_counts_instead_of_waiting() {
        let (tx, _rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(1);
        let mut w = QueueWriter(tx);
        let (_, before) = lost_lines();
        for _ in 0..3 {
            assert_eq!(w.write(b"line\n").unwrap(), 5);
        }
        assert!(lost_lines().1 >= before + 2);
    }
}
