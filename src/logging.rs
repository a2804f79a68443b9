//! Log setup: `tracing` to stderr, as text or JSON lines, level from `RUST_LOG` or `log.level`.
//!
//! Invariants:
//! - Nothing bizrelay logs carries a webhook URL, a signature, the admin token or an unmasked
//!   phone number (a test runs the binary and searches its whole log for them). The HTTP
//!   libraries are held at `warn` by default because their debug output names hosts, and
//!   handlebars is held at `warn` whatever `log.level` or `RUST_LOG` say: at debug it logs
//!   every helper parameter, phone numbers included.
//! - Values from requests are clipped ([`clip`]) before they are logged.
//! - Text logs are coloured only when stderr is a terminal (and `NO_COLOR` is unset).

use std::borrow::Cow;
use std::io::IsTerminal;

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

/// Longest value from a request logged as it is (`hookId`); `hooksId` is clipped to the same
/// length when parsed. A 1 MB id would otherwise add megabytes of log per POST and per retry.
pub const MAX_LOGGED_VALUE: usize = 256;

/// A value from a request, clipped for a log line (ending with `…` when cut).
pub fn clip(value: &str) -> Cow<'_, str> {
    if value.len() <= MAX_LOGGED_VALUE {
        Cow::Borrowed(value)
    } else {
        Cow::Owned(crate::text::truncate(value, MAX_LOGGED_VALUE))
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

/// Installs the global subscriber once; later calls do nothing (tests build several apps).
pub fn init(format: LogFormat, level: &str) {
    let _ = subscriber(format, level, std::io::stderr).try_init();
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
}
