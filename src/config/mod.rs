//! Typed configuration: what every setting means, its default, and the whole-config checks.
//!
//! Invariants:
//! - A [`Loaded`] config has passed every check: each route names known destinations and
//!   templates that exist for every destination type it posts to, globs compile, URLs parse.
//! - Errors name the file, the key and the reason, and never quote a secret (URLs, signatures,
//!   the admin token).
//! - Loading is a pure function of (file text, environment map, template files): tests need
//!   no process environment.

pub mod enrich;
mod env;
mod explain;
mod load;
mod validate;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};

use crate::locale::Locale;
use crate::render::Renderer;
use crate::route::{Route, RouteConfig};
use crate::secret::Secret;

pub use crate::destination::DestinationConfig;
pub use load::{ConfigSource, DEFAULT_CONFIG, load};

/// The signature config.toml.example accepts until `BIZRELAY_SIGNATURE` is set, so the README's
/// quick start works; public, so `check` and start-up warn while it is accepted.
pub const EXAMPLE_SIGNATURE: &str = "try-bizrelay";

/// One problem with a config, named by file and key.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("{file}: {key}: {reason}")]
pub struct ConfigError {
    pub file: String,
    pub key: String,
    pub reason: String,
}

/// A validated config with everything built from it.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Arc<Config>,
    pub routes: Arc<Vec<Route>>,
    pub renderer: Arc<Renderer>,
    /// Where it came from: a file path or "built-in default".
    pub origin: String,
    /// Short hash of the effective config and template sources, to tell versions apart.
    pub hash: String,
    /// Things that work but deserve a look (no signature, unused destinations...).
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub ingest: IngestConfig,
    #[serde(default)]
    pub store: StoreConfig,
    #[serde(default)]
    pub delivery: DeliveryConfig,
    #[serde(default)]
    pub privacy: PrivacyConfig,
    #[serde(default)]
    pub templates: TemplatesConfig,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub admin: AdminConfig,
    #[serde(default)]
    pub threads: ThreadsConfig,
    #[serde(default)]
    pub enrich: enrich::EnrichConfig,
    #[serde(default)]
    pub destinations: BTreeMap<String, DestinationConfig>,
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address of the webhook listener (and of metrics/health unless `admin.listen` is set).
    pub listen: SocketAddr,
    /// Path NHN posts to.
    pub path: String,
    /// Larger bodies are refused with 413.
    pub max_body_bytes: usize,
    /// Time allowed for a client to send its request headers (slow-loris guard); also how long
    /// an idle keep-alive connection is kept.
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// Time allowed to receive the whole body once headers are in.
    #[serde(with = "humantime_serde")]
    pub body_read_timeout: Duration,
    /// Connections the kernel queues while bizrelay is busy accepting (capped by
    /// `net.core.somaxconn`); sized for bursts so none is dropped.
    pub backlog: u32,
    /// Connections served at once; more wait in the backlog instead of costing memory.
    pub max_connections: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            path: "/hooks/bizmessage".into(),
            max_body_bytes: 1024 * 1024,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(10),
            backlog: 4096,
            max_connections: 10_000,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// Accepted `X-Toast-Webhook-Signature` values; empty accepts unsigned requests.
    #[serde(deserialize_with = "lenient_strings")]
    pub signatures: Vec<String>,
    /// Accepted `appKey`s; empty accepts any.
    #[serde(deserialize_with = "lenient_strings")]
    pub app_keys: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncMode {
    /// fsync on every commit: safe against power loss.
    Full,
    /// fsync at checkpoints only: safe against process crashes (`kill -9`), not power loss.
    Normal,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// The SQLite file (used when `url` is not set).
    pub path: PathBuf,
    /// `postgres://user@host:port/db` selects PostgreSQL (a secret: it may hold a password).
    #[serde(deserialize_with = "lenient_opt_secret")]
    pub url: Option<Secret>,
    pub sync: SyncMode,
    /// A `hookId` seen within this window is not relayed again.
    #[serde(with = "humantime_serde")]
    pub dedup_window: Duration,
    /// Delivered deliveries are kept this long (for inspection), then pruned.
    #[serde(with = "humantime_serde")]
    pub keep_delivered: Duration,
    /// Hooks that matched no route (and quarantined ones) are kept this long for `reroute`.
    #[serde(with = "humantime_serde")]
    pub keep_unrouted: Duration,
    /// A store operation that takes longer fails (the webhook answers 503 instead of hanging).
    #[serde(with = "humantime_serde")]
    pub commit_timeout: Duration,
    /// How long a replica's claim on work (hooks to route, a digest, a delivery in flight on
    /// top of its timeout) lasts before another replica may take it over.
    #[serde(with = "humantime_serde")]
    pub lease: Duration,
    /// PostgreSQL connections per replica.
    pub pool_size: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            path: PathBuf::from("data/bizrelay.db"),
            url: None,
            sync: SyncMode::Full,
            dedup_window: Duration::from_secs(7 * 24 * 3600),
            keep_delivered: Duration::from_secs(24 * 3600),
            keep_unrouted: Duration::from_secs(7 * 24 * 3600),
            commit_timeout: Duration::from_secs(5),
            lease: Duration::from_secs(30),
            pool_size: 8,
        }
    }
}

/// Slack threads of `slack_bot` destinations (one per template review).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ThreadsConfig {
    /// A thread's row is kept this long after its last event, then pruned (its next event
    /// starts a new root). Reviews span days, so weeks rather than hours.
    #[serde(with = "humantime_serde")]
    pub keep: Duration,
}

impl Default for ThreadsConfig {
    fn default() -> Self {
        ThreadsConfig {
            keep: Duration::from_secs(90 * 24 * 3600),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliveryConfig {
    pub max_attempts: u32,
    #[serde(with = "humantime_serde")]
    pub max_age: Duration,
    pub backoff: BackoffConfig,
    /// How long in-flight posts may finish after SIGTERM.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// Default HTTP timeout per post (a destination may override it).
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            max_attempts: 20,
            max_age: Duration::from_secs(24 * 3600),
            backoff: BackoffConfig::default(),
            shutdown_grace: Duration::from_secs(10),
            timeout: Duration::from_secs(10),
        }
    }
}

/// Exponential backoff: `initial`, doubling up to `max`, with jitter.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackoffConfig {
    #[serde(with = "humantime_serde")]
    pub initial: Duration,
    #[serde(with = "humantime_serde")]
    pub max: Duration,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(600),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrivacyConfig {
    /// Mask `recipientNo` (`010****5678`) everywhere in template contexts.
    pub mask_recipient: bool,
}

impl Default for PrivacyConfig {
    fn default() -> Self {
        PrivacyConfig {
            mask_recipient: true,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TemplatesConfig {
    /// Folder of `<type>/<name>.hbs` (every locale) and `<type>/<locale>/<name>.hbs`
    /// overrides; relative paths are resolved against the config file's folder (or the working
    /// directory for the built-in default).
    pub dir: PathBuf,
    /// Language of the built-in templates (a destination's `locale` overrides it).
    pub locale: Locale,
}

impl Default for TemplatesConfig {
    fn default() -> Self {
        TemplatesConfig {
            dir: PathBuf::from("templates"),
            locale: Locale::En,
        }
    }
}

impl Config {
    /// The locale a destination's templates speak.
    pub fn locale_of(&self, dest: &DestinationConfig) -> Locale {
        dest.locale_or(self.templates.locale)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A tracing filter such as `info` or `bizrelay=debug`; `RUST_LOG` wins when set.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Bearer token for `POST /-/reload`; reload over HTTP is off without it.
    #[serde(deserialize_with = "lenient_opt_string")]
    pub token: Option<String>,
    /// Separate address for metrics, health and reload (off: they share `server.listen`).
    pub listen: Option<SocketAddr>,
}

/// Accepts strings and numbers (environment overrides arrive typed: a numeric signature
/// must not turn into a type error).
fn lenient_strings<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Item {
        S(String),
        I(i64),
        F(f64),
        B(bool),
    }
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum List {
        One(Item),
        Many(Vec<Item>),
    }
    let items = match List::deserialize(d)? {
        List::One(i) => vec![i],
        List::Many(v) => v,
    };
    Ok(items
        .into_iter()
        .map(|i| match i {
            Item::S(s) => s,
            Item::I(n) => n.to_string(),
            Item::F(f) => f.to_string(),
            Item::B(b) => b.to_string(),
        })
        .collect())
}

/// Like [`lenient_opt_string`], into a [`Secret`].
fn lenient_opt_secret<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Secret>, D::Error> {
    Ok(lenient_opt_string(d)?.map(Secret::new))
}

/// An empty value counts as unset (an empty admin token disables reload over HTTP rather than
/// accepting an empty bearer token).
fn lenient_opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(lenient_strings(d)?
        .into_iter()
        .next()
        .filter(|s| !s.is_empty()))
}
