//! The command line: `serve` (the default), `check`, `route` (dry run), `dead-letters`,
//! `send-test`, `reroute`, `quarantine`, `rejected`, `templates`, `threads` and `silence`.
//! `--config` is accepted by every subcommand,
//! before or after its own arguments.
//!
//! Exit codes: 0 all well; 1 the command ran and found problems (check, a failed send-test);
//! 2 it could not run (bad config, unreadable input, store unavailable).

mod check;
mod dead_letters;
mod out;
mod rejected;
mod reroute;
mod route;
mod send_test;
mod silence;
mod templates;
mod threads;

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
    /// Post a message marked TEST, rendered from harmless sample data, to a destination
    /// through the real delivery path.
    SendTest {
        /// The destination's name in the config (default with --route: each of the route's).
        #[arg(long, required_unless_present = "route")]
        destination: Option<String>,
        /// Render with this route's template (the one a hook of --kind taking the route gets;
        /// a grouped route's digest template for --kind digest).
        #[arg(long)]
        route: Option<String>,
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
    /// Hooks that could not be understood, kept with why (recipient numbers masked).
    #[command(subcommand)]
    Rejected(RejectedCommand),
    /// Export the built-in templates to edit, or list which ones files override.
    #[command(subcommand)]
    Templates(TemplatesCommand),
    /// The Slack threads of `slack_bot` destinations (one per template review).
    #[command(subcommand)]
    Threads(ThreadCommand),
    /// Keep matching hooks out of chat for a while (they are still stored and counted).
    #[command(subcommand)]
    Silence(SilenceCommand),
}

#[derive(Debug, Subcommand)]
pub enum TemplatesCommand {
    /// Write the built-in templates into DIR/<type>/<locale>/<name>.hbs (never overwrites).
    Export {
        /// The folder to write into (created if missing).
        #[arg(value_name = "DIR")]
        dir: PathBuf,
        /// Only this destination type's templates (e.g. slack).
        #[arg(long = "type", value_name = "T")]
        kind: Option<String>,
        /// Only this locale's (en or ko).
        #[arg(long, value_name = "L")]
        locale: Option<String>,
    },
    /// List every template with where it comes from: built-in, overridden by a file, or a
    /// file's own.
    List {
        /// Only this destination type's templates.
        #[arg(long = "type", value_name = "T")]
        kind: Option<String>,
        #[arg(long, value_enum, default_value = "text")]
        format: OutputFormat,
    },
}

#[derive(Debug, Subcommand)]
pub enum RejectedCommand {
    /// List rejected hooks, newest first, with the reason and a masked excerpt.
    List {
        #[arg(long, value_enum, default_value = "text")]
        format: OutputFormat,
    },
    /// Show one rejected hook whole (masked).
    Show {
        /// The id `rejected list` shows.
        id: i64,
        #[arg(long, value_enum, default_value = "text")]
        format: OutputFormat,
    },
    /// Delete rejected hooks.
    Purge {
        #[command(flatten)]
        which: PurgeWhich,
    },
}

#[derive(Debug, Subcommand)]
pub enum ThreadCommand {
    /// List known threads with their root message and current status.
    List {
        /// Only this destination's threads.
        #[arg(long)]
        destination: Option<String>,
        #[arg(long, value_enum, default_value = "text")]
        format: OutputFormat,
    },
    /// Drop a thread: the key's next event posts a new root message.
    Forget {
        /// destination/senderKey/templateCode, as `threads list` shows it.
        key: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum SilenceCommand {
    /// Silence hooks matching every KEY=GLOB given (route match keys, route globs).
    Add {
        /// `key=glob`, e.g. result_code=3019 template_code='ORDER_*' (all must match).
        #[arg(value_name = "MATCHER", required = true, num_args = 1..)]
        matchers: Vec<String>,
        /// How long, e.g. 2h or 30m.
        #[arg(long = "for", value_name = "DURATION", value_parser = humantime::parse_duration)]
        duration: std::time::Duration,
        /// Why (shown in `silence list`), e.g. "NHN incident #123".
        #[arg(long)]
        comment: String,
        /// Who added it (default: $USER).
        #[arg(long, env = "USER")]
        author: Option<String>,
    },
    /// List active and pending silences.
    List {
        /// Also those that ended within this long (e.g. 1d).
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        expired: Option<std::time::Duration>,
        #[arg(long, value_enum, default_value = "text")]
        format: OutputFormat,
    },
    /// End a silence now.
    Expire {
        /// The silence's id (from `silence list`).
        id: i64,
    },
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
    /// A failure-rate alert firing (`rate_firing`).
    #[value(name = "rate_firing")]
    RateFiring,
    /// A failure-rate alert resolved (`rate_resolved`).
    #[value(name = "rate_resolved")]
    RateResolved,
    /// A digest group's resolved message (`digest_resolved`).
    #[value(name = "digest_resolved")]
    DigestResolved,
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
    /// Ids (repeatable).
    #[arg(long = "id", num_args = 1..)]
    pub ids: Vec<i64>,
    /// Purge those whose last attempt is older than this (e.g. 7d).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub older_than: Option<std::time::Duration>,
    /// Every one.
    #[arg(long)]
    pub all: bool,
}

impl PurgeWhich {
    /// What the store is asked to purge, ages counted back from `now`.
    pub fn selection(&self, now: i64) -> crate::store::Selection {
        use crate::store::Selection;
        if self.all {
            Selection::All
        } else if let Some(age) = self.older_than {
            Selection::OlderThan(now - i64::try_from(age.as_millis()).unwrap_or(i64::MAX))
        } else {
            Selection::Ids(self.ids.clone())
        }
    }
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
    crate::text::count(n as u64, one, many)
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
    // Export needs no config: an installed binary writes its built-ins anywhere.
    if let Command::Templates(TemplatesCommand::Export { dir, kind, locale }) = &command {
        return templates::export(dir, kind.as_deref(), locale.as_deref());
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
        Command::Route { format, payload } => {
            let silences = rt.block_on(route::live_silences(&loaded));
            route::run(&loaded, &payload, format, &silences, &rt)
        }
        Command::DeadLetters(cmd) => rt.block_on(dead_letters::run(&loaded, cmd)),
        Command::SendTest {
            destination,
            route,
            kind,
            enriched,
        } => {
            let enriched = enriched || loaded.config.enrich.enabled;
            rt.block_on(send_test::run(
                &loaded,
                destination.as_deref(),
                route.as_deref(),
                kind,
                enriched,
            ))
        }
        Command::Reroute { which } => rt.block_on(reroute::run(&loaded, which)),
        Command::Quarantine(QuarantineCommand::List { format }) => {
            rt.block_on(reroute::quarantine_list(&loaded, format))
        }
        Command::Rejected(cmd) => rt.block_on(rejected::run(&loaded, cmd)),
        Command::Templates(TemplatesCommand::List { kind, format }) => {
            templates::list(&loaded, kind.as_deref(), format)
        }
        Command::Templates(TemplatesCommand::Export { .. }) => unreachable!("handled above"),
        Command::Threads(cmd) => rt.block_on(threads::run(&loaded, cmd)),
        Command::Silence(SilenceCommand::Add {
            matchers,
            duration,
            comment,
            author,
        }) => rt.block_on(silence::add(
            &loaded,
            &matchers,
            duration,
            &comment,
            author.as_deref(),
        )),
        Command::Silence(SilenceCommand::List { expired, format }) => {
            rt.block_on(silence::list(&loaded, expired, format))
        }
        Command::Silence(SilenceCommand::Expire { id }) => {
            rt.block_on(silence::expire(&loaded, id))
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
