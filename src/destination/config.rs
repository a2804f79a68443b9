//! A destination's config block: the settings every type has, the type's own settings (read
//! and checked by its service), and the checks services share (URLs).
//!
//! Invariants:
//! - Secrets (the URL, any setting a service reads as a [`Secret`]) never print: `Debug` and
//!   `Serialize` of a [`DestinationConfig`] show `[redacted]` for them.
//! - A problem names the setting and the reason, never the value (it may be a credential).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

use super::{DestinationKind, Pacing};
use crate::locale::Locale;
use crate::secret::{self, Secret};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DestinationConfig {
    #[serde(rename = "type")]
    pub kind: DestinationKind,
    /// Incoming-webhook URL: a secret, never logged.
    #[serde(default, deserialize_with = "secret::lenient_opt")]
    pub url: Option<Secret>,
    /// Messages per second (token bucket). Default per type (1 for most, unlimited for the
    /// console); 0 is unlimited.
    #[serde(default)]
    pub rate_per_second: Option<f64>,
    /// Messages that may go out back to back before pacing applies. Default per type.
    #[serde(default)]
    pub burst: Option<u32>,
    /// HTTP timeout (default `delivery.timeout`).
    #[serde(default, with = "humantime_serde")]
    pub timeout: Option<Duration>,
    /// Language of the built-in templates (default `templates.locale`).
    #[serde(default)]
    pub locale: Option<Locale>,
    /// The type's own settings (`bot_name`, `headers`, ...): its service reads and checks them.
    #[serde(flatten)]
    pub options: Options,
}

impl DestinationConfig {
    /// Messages per second, `None` for unlimited.
    pub fn rate(&self) -> Option<f64> {
        match self.rate_per_second {
            Some(r) if r > 0.0 => Some(r),
            Some(_) => None,
            None => self.kind.default_pacing().rate,
        }
    }

    pub fn burst(&self) -> u32 {
        self.burst
            .unwrap_or(self.kind.default_pacing().burst)
            .max(1)
    }

    pub fn pacing(&self) -> Pacing {
        Pacing {
            rate: self.rate(),
            burst: self.burst(),
        }
    }

    /// The locale its built-in templates speak.
    pub fn locale_or(&self, default: Locale) -> Locale {
        self.locale.unwrap_or(default)
    }
}

/// Settings particular to a type, as written. Values may be secrets, so `Debug` shows only
/// the names and `Serialize` redacts every value.
#[derive(Clone, Default, Deserialize)]
#[serde(transparent)]
pub struct Options(BTreeMap<String, Value>);

impl Options {
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// Reads the settings into the service's own type. `Err` is `(setting, reason)`.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, (String, String)> {
        let value = Value::Object(self.0.clone().into_iter().collect());
        serde_path_to_error::deserialize(value).map_err(|e| {
            let key = e.path().to_string();
            (key, without_quoted_values(&e.inner().to_string()))
        })
    }
}

impl FromIterator<(String, Value)> for Options {
    fn from_iter<I: IntoIterator<Item = (String, Value)>>(iter: I) -> Options {
        Options(iter.into_iter().collect())
    }
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl Serialize for Options {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.keys().map(|k| (k, secret::REDACTED)))
    }
}

/// serde quotes the offending value (`invalid type: string "https://…"`, `` integer `5` ``);
/// a value may be a secret, so quoted text goes.
fn without_quoted_values(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut quote: Option<char> = None;
    for c in message.chars() {
        match quote {
            Some(q) if c == q => {
                out.push('…');
                out.push(c);
                quote = None;
            }
            Some(_) => {}
            None if c == '"' || c == '`' => {
                out.push(c);
                quote = Some(c);
            }
            None => out.push(c),
        }
    }
    out
}

/// Problems and warnings about one destination, keyed by setting (`url`, `bot_name`...).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Checks {
    pub errors: Vec<(String, String)>,
    pub warnings: Vec<(String, String)>,
}

impl Checks {
    pub fn error(&mut self, key: &str, reason: impl Into<String>) {
        self.errors.push((key.to_string(), reason.into()));
    }

    pub fn warn(&mut self, key: &str, reason: impl Into<String>) {
        self.warnings.push((key.to_string(), reason.into()));
    }

    /// Checks everything common to all types, then the type's own checks.
    pub fn of(dest: &DestinationConfig) -> Checks {
        let mut checks = Checks::default();
        let known = dest.kind.settings();
        for name in dest.options.names() {
            if !known.contains(&name) {
                let mut all = vec!["url", "rate_per_second", "burst", "timeout", "locale"];
                all.extend(known);
                checks.error(
                    name,
                    format!(
                        "not a setting of a {} destination (its settings: {})",
                        dest.kind.as_str(),
                        all.join(", ")
                    ),
                );
            }
        }
        dest.kind.check(dest, &mut checks);
        checks
    }

    /// Reads the service's settings, reporting problems; `None` when they are unusable.
    pub fn options<T: DeserializeOwned>(&mut self, dest: &DestinationConfig) -> Option<T> {
        match dest.options.parse() {
            Ok(t) => Some(t),
            Err((key, reason)) => {
                self.error(&key, reason);
                None
            }
        }
    }

    /// The `url` must be there and be http(s); `expected` describes where the service's
    /// webhooks live: other hosts or paths are a warning (tests and proxies use their own).
    pub fn webhook_url(&mut self, dest: &DestinationConfig, expected: &UrlShape) {
        let Some(url) = &dest.url else {
            self.error(
                "url",
                format!("a {} destination needs a url", dest.kind.as_str()),
            );
            return;
        };
        let Some(u) = http_url(url) else {
            // Never echo the URL: it is the credential.
            self.error("url", "not a valid http(s) URL");
            return;
        };
        if u.scheme() == "http" && !is_local(&u) {
            self.warn("url", "plain http sends the webhook secret unencrypted");
        }
        if is_local(&u) {
            return;
        }
        let host = u.host_str().unwrap_or("");
        let host_ok = expected.hosts.is_empty()
            || expected
                .hosts
                .iter()
                .any(|h| host == *h || host.ends_with(&format!(".{h}")));
        let path_ok = u.path().starts_with(expected.path_prefix);
        if !(host_ok && path_ok) {
            self.warn(
                "url",
                format!(
                    "does not look like {} ({}): check it was copied whole",
                    expected.what, expected.example
                ),
            );
        }
    }
}

/// Where a service's webhook URLs live, for [`Checks::webhook_url`].
pub struct UrlShape {
    pub what: &'static str,
    /// Accepted hosts (and their subdomains); empty: any host.
    pub hosts: &'static [&'static str],
    pub path_prefix: &'static str,
    /// The shape shown in the warning (no real token).
    pub example: &'static str,
}

pub fn http_url(url: &Secret) -> Option<url::Url> {
    url::Url::parse(url.expose())
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
}

fn is_local(u: &url::Url) -> bool {
    matches!(u.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn dest(v: Value) -> DestinationConfig {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn options_are_kept_apart_and_never_printed() {
        let d = dest(
            json!({"type": "webhook", "url": "https://x.invalid/in?token=SECRET",
            "signing_secret": "whsec_SECRET", "rate_per_second": 2}),
        );
        assert_eq!(d.rate(), Some(2.0));
        assert_eq!(d.options.names().collect::<Vec<_>>(), ["signing_secret"]);
        let shown = format!("{d:?} {}", serde_json::to_string(&d).unwrap());
        assert!(!shown.contains("SECRET"), "{shown}");
        assert!(shown.contains("signing_secret"), "{shown}");
    }

    #[test]
    fn unknown_settings_and_bad_values_are_named_without_values() {
        let d = dest(
            json!({"type": "slack", "url": "https://hooks.slack.com/services/T/B/X",
            "bot_name": "x"}),
        );
        let checks = Checks::of(&d);
        assert_eq!(checks.errors.len(), 1, "{checks:?}");
        assert_eq!(checks.errors[0].0, "bot_name");
        assert!(
            checks.errors[0]
                .1
                .contains("not a setting of a slack destination")
        );
        #[derive(Deserialize, Debug)]
        #[allow(dead_code)]
        struct T {
            n: u32,
        }
        let opts: Options = [("n".to_string(), json!("SECRETVALUE"))]
            .into_iter()
            .collect();
        let (key, reason) = opts.parse::<T>().unwrap_err();
        assert_eq!(key, "n");
        assert!(
            !reason.contains("SECRETVALUE") && reason.contains("invalid type"),
            "{reason}"
        );
    }

    #[test]
    fn urls_are_checked_without_echoing_them() {
        let shape = UrlShape {
            what: "a Dooray! incoming hook",
            hosts: &["dooray.com"],
            path_prefix: "/services/",
            example: "https://hook.dooray.com/services/…",
        };
        let cases = [
            (json!({"type": "dooray"}), 1, 0),
            (json!({"type": "dooray", "url": "not a url TOKEN"}), 1, 0),
            (
                json!({"type": "teams", "url": "https://hook.dooray.com/services/1/2/TOKEN"}),
                0,
                0,
            ),
            (
                json!({"type": "teams", "url": "https://elsewhere.invalid/TOKEN"}),
                0,
                1,
            ),
            (
                json!({"type": "teams", "url": "http://hook.dooray.com/services/TOKEN"}),
                0,
                1,
            ),
            (
                json!({"type": "teams", "url": "http://127.0.0.1:9/TOKEN"}),
                0,
                0,
            ),
        ];
        for (v, errors, warnings) in cases {
            let mut c = Checks::default();
            c.webhook_url(&dest(v.clone()), &shape);
            assert_eq!(
                (c.errors.len(), c.warnings.len()),
                (errors, warnings),
                "{v}: {c:?}"
            );
            assert!(!format!("{c:?}").contains("TOKEN"));
        }
    }
}

#[cfg(test)]
mod example_tests {
    use std::collections::HashMap;
    use std::path::PathBuf;

    use crate::config::{ConfigSource, load};

    /// The commented examples of every type in config.toml.example are valid when uncommented.
    #[test]
    fn the_example_s_commented_destinations_load() {
        let text = include_str!("../../config.toml.example");
        let start = text.find("# More types").expect("the examples");
        let end = start
            + text[start..]
                .find("# ----")
                .expect("end of the destinations");
        let uncommented: String = text[start..end]
            .lines()
            .map(|l| l.strip_prefix("# ").unwrap_or(l))
            .filter(|l| {
                l.starts_with('[')
                    || l.split_once(" = ").is_some_and(|(k, _)| {
                        !k.is_empty() && k.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                    })
            })
            .map(|l| format!("{l}\n"))
            .collect();
        let text = format!("{}{uncommented}{}", &text[..start], &text[end..]);
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let env: HashMap<String, String> = [
            "SLACK_WEBHOOK_URL",
            "SLACK_ALERTS_WEBHOOK_URL",
            "TEAMS_WORKFLOW_URL",
            "DOORAY_HOOK_URL",
            "JANDI_WEBHOOK_URL",
            "GOOGLE_CHAT_WEBHOOK_URL",
            "DISCORD_WEBHOOK_URL",
            "MATTERMOST_WEBHOOK_URL",
        ]
        .into_iter()
        .map(|k| (k.to_string(), "https://example.invalid/hook".to_string()))
        .chain([
            ("BIZRELAY_WEBHOOK_SECRET".to_string(), secret.to_string()),
            ("TICKETS_API_KEY".to_string(), "k".to_string()),
            ("BIZRELAY_SIGNATURE".to_string(), "s".to_string()),
            ("BIZRELAY_ADMIN_TOKEN".to_string(), "t".to_string()),
        ])
        .collect();
        let loaded = load(
            &ConfigSource::File {
                path: PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/config.toml.example")),
                text,
            },
            &env,
        )
        .unwrap_or_else(|e| panic!("{e:?}"));
        let kinds: Vec<&str> = loaded
            .config
            .destinations
            .values()
            .map(|d| d.kind.as_str())
            .collect();
        for kind in [
            "dooray",
            "jandi",
            "google_chat",
            "discord",
            "mattermost",
            "webhook",
        ] {
            assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
        }
    }
}
