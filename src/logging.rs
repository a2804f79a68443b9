//! Log setup: `tracing` to stderr, as text or JSON lines, level from `RUST_LOG` or `log.level`.
//!
//! Invariant: nothing bizrelay logs carries a webhook URL, a signature, the admin token or an
//! unmasked phone number (a test runs the binary and searches its whole log for them). The
//! HTTP libraries are held at `warn` by default because their debug output names hosts.

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Dependencies quieter than our own default level.
const QUIET: &str =
    "hyper=warn,hyper_util=warn,reqwest=warn,rustls=warn,h2=warn,notify=warn,warp=warn";

/// Installs the global subscriber once; later calls do nothing (tests build several apps).
pub fn init(format: LogFormat, level: &str) {
    let filter = match std::env::var("RUST_LOG") {
        Ok(v) if !v.trim().is_empty() => EnvFilter::new(v),
        _ => EnvFilter::new(format!("{level},{QUIET}")),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
