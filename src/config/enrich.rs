//! `[enrich]`: looking failed message results up in NHN's message query API (issue #16).
//!
//! Invariants:
//! - Secret keys are [`Secret`]s: never printed, logged or echoed in an error.
//! - [`check`] is the whole validation of the section (`check`, start-up and reload all run it);
//!   its reasons never quote a secret.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::secret::Secret;

/// NHN's production domain for the Bizmessage APIs.
pub const NHN_BASE_URL: &str = "https://kakaotalk-bizmessage.api.nhncloudservice.com";
/// The longest `wait` accepted: routing holds a hook at most this long, and its claim must
/// outlive the wait.
pub const MAX_WAIT: Duration = Duration::from_secs(60);

/// Which result hooks are looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum EnrichOnly {
    /// Hooks whose result code is not a success (the default).
    #[default]
    Failures,
    All,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EnrichConfig {
    pub enabled: bool,
    /// Where the query API lives; the only origin a secret key is ever sent to.
    pub base_url: String,
    pub only: EnrichOnly,
    /// Routing waits at most this long for a lookup, then routes without it.
    #[serde(with = "humantime_serde")]
    pub wait: Duration,
    /// Lookups in flight at once, per app key.
    pub max_in_flight: usize,
    /// How long a learned requestId → template code answer is kept.
    #[serde(with = "humantime_serde")]
    pub cache: Duration,
    /// Time allowed for one query.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Show the rendered message (`content`, masked and truncated): it can hold personal data.
    pub show_content: bool,
    pub app_keys: BTreeMap<String, AppKeyConfig>,
}

impl Default for EnrichConfig {
    fn default() -> Self {
        EnrichConfig {
            enabled: false,
            base_url: NHN_BASE_URL.into(),
            only: EnrichOnly::Failures,
            wait: Duration::from_secs(3),
            max_in_flight: 2,
            cache: Duration::from_secs(24 * 3600),
            timeout: Duration::from_secs(5),
            show_content: false,
            app_keys: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppKeyConfig {
    /// Sent as `X-Secret-Key`.
    pub secret_key: Secret,
}

impl EnrichConfig {
    /// The secret key of an app key, when enrichment is on and the key has one.
    pub fn secret_of(&self, app_key: &str) -> Option<&Secret> {
        if !self.enabled {
            return None;
        }
        self.app_keys.get(app_key).map(|a| &a.secret_key)
    }
}

/// Every problem of the section, as (key, reason).
pub fn check(c: &EnrichConfig) -> Vec<(String, String)> {
    let mut errors = Vec::new();
    let mut err = |k: &str, r: String| errors.push((format!("enrich.{k}"), r));
    match url::Url::parse(&c.base_url) {
        Ok(u) if !matches!(u.scheme(), "https" | "http") => err(
            "base_url",
            format!("must be an https:// URL (got the scheme `{}`)", u.scheme()),
        ),
        Ok(u) if u.host_str().is_none() => err("base_url", "must name a host".into()),
        Ok(u) if !u.username().is_empty() || u.password().is_some() => err(
            "base_url",
            "must not hold a user or password (the secret key goes in `app_keys`)".into(),
        ),
        Ok(u) if u.query().is_some() || u.fragment().is_some() => {
            err("base_url", "must not have a query or fragment".into())
        }
        Ok(_) => {}
        Err(e) => err("base_url", format!("is not a URL ({e})")),
    }
    if c.wait.is_zero() || c.wait > MAX_WAIT {
        err(
            "wait",
            format!(
                "must be longer than 0s and at most {} (routing holds a hook this long)",
                humantime::format_duration(MAX_WAIT)
            ),
        );
    }
    if c.max_in_flight == 0 || c.max_in_flight > 64 {
        err("max_in_flight", "must be between 1 and 64".into());
    }
    if c.cache < Duration::from_secs(60) {
        err("cache", "must be at least 1m".into());
    }
    if c.timeout.is_zero() {
        err("timeout", "must be longer than 0s".into());
    }
    for (key, app) in &c.app_keys {
        if key.trim().is_empty() {
            err("app_keys", "an app key must not be empty".into());
        }
        let s = app.secret_key.expose();
        if s.trim().is_empty() {
            err(
                &format!("app_keys.{key}.secret_key"),
                "is empty (is the environment variable set?)".into(),
            );
        } else if s.chars().any(|ch| ch.is_control() || ch == ' ') {
            err(
                &format!("app_keys.{key}.secret_key"),
                "holds spaces or control characters (cannot be sent as a header)".into(),
            );
        }
    }
    if c.enabled && c.app_keys.is_empty() {
        err(
            "app_keys",
            "enrichment is enabled but no app key has a secret_key: add \
             [enrich.app_keys.<appKey>] secret_key = \"${NHN_SECRET_KEY}\""
                .into(),
        );
    }
    errors
}
