//! The command line: `serve` (the default), `check`, `route` (dry run), `dead-letters`,
//! `send-test`, `reroute` and `quarantine`. `--config` is accepted by every subcommand,
//! before or after its own arguments.
//!
//! Exit codes: 0 all well; 1 the command ran and found problems (check, a failed send-test);
//! 2 it could not run (bad config, unreadable input, store unavailable).

mod check;
mod dead_letters;
mod out;
mod reroute;
mod route;
mod send_test;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::{ConfigError, Loaded, LogFormat, load};
use crate::reload::SourceSpec;

#[derive(Debug, Parser)]
#[command(
    name = "bizrelay",
    version,
    about = "Relays NHN Cloud KakaoTalk Bizmessage webhooks to Slack and Microsoft Teams"
)]
pub struct Cli {
    /// Config file (default: ./config.toml if present, else the built-in default).
    #[arg(long, global = true, value_name = "PATH", env = "BIZRELAY_CONFIG")]
    pub config: Option<PathBuf>,
    /// Log format (overrides log.format).
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<LogFormatArg>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormatArg {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum OutputFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (the default when no command is given).
    Serve,
    /// Validate the config, compile and render every template against sample hooks.
    Check,
    /// Dry run: show which routes a payload's hooks take and the exact bodies (sends nothing).
    Route {
        /// `json` prints an array of {"hook_id", "route", "destination", "payload"}.
        #[arg(long, value_enum, default_value = "text")]
        format: OutputFormat,
        /// A webhook body as NHN posts it (JSON).
        #[arg(value_name = "PAYLOAD_FILE")]
        payload: PathBuf,
    },
    /// Inspect, replay or purge deliveries that will not be retried by themselves.
    #[command(subcommand)]
    DeadLetters(DeadLetterCommand),
    /// Render a built-in sample and post it to a destination through the real delivery path.
    SendTest {
        /// The destination's name in the config.
        #[arg(long)]
        destination: String,
        /// Which built-in sample to send.
        #[arg(long, value_enum, default_value = "message_result")]
        kind: SampleKind,
        /// Attach a sample enrichment (template code, SMS fallback) to the message result, as
        /// `[enrich]` would; on by default when `[enrich]` is enabled.
        #[arg(long)]
        enriched: bool,
    },
    /// Route stored hooks again with the current config (works while the server runs; a
    /// hook is never sent twice to a destination it already reached).
    Reroute {
        #[command(flatten)]
        which: RerouteWhich,
    },
    /// Hooks whose routing failed repeatedly and that are held back.
    #[command(subcommand)]
    Quarantine(QuarantineCommand),
}

#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct RerouteWhich {
    /// Every hook received within this long (e.g. 2h), whatever came of it.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub since: Option<std::time::Duration>,
    /// Every stored hook that matched no route.
    #[arg(long)]
    pub all_unrouted: bool,
    /// Every quarantined hook.
    #[arg(long)]
    pub quarantined: bool,
}

#[derive(Debug, Subcommand)]
pub enum QuarantineCommand {
    /// List quarantined hooks with why routing them failed.
    List {
        #[arg(long, value_enum, default_value = "text")]
        format: OutputFormat,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum SampleKind {
    #[value(name = "template")]
    Template,
    #[value(name = "message_result")]
    MessageResult,
    #[value(name = "digest")]
    Digest,
}

#[derive(Debug, Subcommand)]
pub enum DeadLetterCommand {
    /// List dead letters.
    List {
        /// Only this destination's dead letters.
        #[arg(long)]
        destination: Option<String>,
        #[arg(long, value_enum, default_value = "text")]
        format: OutputFormat,
    },
    /// Put dead letters back in the queue.
    Replay {
        #[command(flatten)]
        which: Which,
        /// Render again with the current templates instead of resending the stored body.
        #[arg(long)]
        rerender: bool,
    },
    /// Delete dead letters.
    Purge {
        #[command(flatten)]
        which: PurgeWhich,
    },
}

#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct Which {
    /// Dead letter ids (repeatable).
    #[arg(long = "id", num_args = 1..)]
    pub ids: Vec<i64>,
    /// Every dead letter of this destination.
    #[arg(long)]
    pub destination: Option<String>,
    /// Every dead letter.
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct PurgeWhich {
    /// Dead letter ids (repeatable).
    #[arg(long = "id", num_args = 1..)]
    pub ids: Vec<i64>,
    /// Purge those whose last attempt is older than this (e.g. 7d).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub older_than: Option<std::time::Duration>,
    /// Every dead letter.
    #[arg(long)]
    pub all: bool,
}

/// The config source: `--config` (must exist), else `./config.toml`, else the built-in default.
pub fn source_spec(config: Option<&Path>) -> SourceSpec {
    match config {
        Some(p) => SourceSpec::File(p.to_path_buf()),
        None if Path::new("config.toml").is_file() => {
            SourceSpec::File(PathBuf::from("config.toml"))
        }
        None => SourceSpec::Builtin,
    }
}

/// `1 hook`, `2 hooks`.
fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn print_config_errors(errors: &[ConfigError]) {
    for e in errors {
        out::err(&format!("error: {e}"));
    }
}

/// Loads the config for a command, printing problems.
fn load_config(
    spec: &SourceSpec,
    env: &HashMap<String, String>,
) -> Result<Loaded, Vec<ConfigError>> {
    let source = spec.read().map_err(|e| vec![e])?;
    load(&source, env)
}

/// Opens the store a command works on, beside a running server; prints why not.
async fn open_store(loaded: &Loaded) -> Result<std::sync::Arc<dyn crate::store::Store>, ExitCode> {
    let cfg = &loaded.config.store;
    crate::store::open(cfg, crate::store::Mode::Tool)
        .await
        .map_err(|e| {
            out::err(&format!(
                "error: cannot open {}: {e}",
                crate::app::store_name(cfg)
            ));
            ExitCode::from(2)
        })
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> ExitCode {
    let env: HashMap<String, String> = std::env::vars().collect();
    let spec = source_spec(cli.config.as_deref());
    let command = cli.command.unwrap_or(Command::Serve);
    if let Command::Check = command {
        return check::run(&spec, &env);
    }
    let loaded = match load_config(&spec, &env) {
        Ok(l) => l,
        Err(errors) => {
            print_config_errors(&errors);
            return ExitCode::from(2);
        }
    };
    let format = match cli.log_format {
        Some(LogFormatArg::Json) => LogFormat::Json,
        Some(LogFormatArg::Text) => LogFormat::Text,
        None => loaded.config.log.format,
    };
    // Held to the end: dropping it lets the last lines reach stderr.
    let _log = match crate::logging::init(
        format,
        &loaded.config.log.level,
        matches!(command, Command::Serve),
    ) {
        Ok(guard) => guard,
        Err(e) => {
            // stderr is gone; stdout may not be.
            let message = format!("error: {e}; bizrelay does not serve without its logs");
            out::line(&message);
            out::err(&message);
            return ExitCode::from(2);
        }
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => {
            out::err(&format!("error: cannot start the async runtime: {e}"));
            return ExitCode::from(2);
        }
    };
    match command {
        Command::Serve => rt.block_on(serve(loaded, spec, env)),
        Command::Check => unreachable!("handled above"),
        Command::Route { format, payload } => route::run(&loaded, &payload, format, &rt),
        Command::DeadLetters(cmd) => rt.block_on(dead_letters::run(&loaded, cmd)),
        Command::SendTest {
            destination,
            kind,
            enriched,
        } => {
            let enriched = enriched || loaded.config.enrich.enabled;
            rt.block_on(send_test::run(&loaded, &destination, kind, enriched))
        }
        Command::Reroute { which } => rt.block_on(reroute::run(&loaded, which)),
        Command::Quarantine(QuarantineCommand::List { format }) => {
            rt.block_on(reroute::quarantine_list(&loaded, format))
        }
    }
}

/// `serve`: runs until SIGTERM or Ctrl-C, then shuts down gracefully and exits 0.
async fn serve(loaded: Loaded, spec: SourceSpec, env: HashMap<String, String>) -> ExitCode {
    if spec == SourceSpec::Builtin {
        tracing::info!("no config file: running the built-in default (console destination)");
    }
    let options = crate::app::Options {
        watch_files: true,
        ..crate::app::Options::new(spec, env)
    };
    let app = match crate::app::App::build(loaded, options).await {
        Ok(app) => app,
        Err(e) => {
            // Once: through the log when it shows errors (in its format), else plainly.
            if tracing::enabled!(tracing::Level::ERROR) {
                tracing::error!(error = %e, "cannot start");
            } else {
                out::err(&format!("error: {e}"));
            }
            return ExitCode::from(2);
        }
    };
    let token = app.shutdown_token();
    tokio::spawn(async move {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(error = %e, "cannot listen for SIGTERM");
                    return;
                }
            };
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = tokio::signal::ctrl_c() => tracing::info!("interrupt received"),
        }
        token.cancel();
    });
    app.run_until_stopped().await;
    ExitCode::SUCCESS
}
