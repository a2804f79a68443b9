//! Chat services, behind one seam: [`ChatService`]. Each service is one file (plus its
//! templates under `templates/<service>/<locale>/`) that owns everything particular to it: its
//! config settings and their checks, default pacing, the escaping of untrusted text, built-in
//! templates per locale, limits and fitting, the independent audit, the fallback message,
//! building the HTTP request and classifying the answer. No I/O here; `deliver` sends what
//! [`ChatService::request`] builds.
//!
//! Invariants:
//! - [`ALL`] is the one list of services; nothing else matches on the type.
//! - `fit` turns a rendered body into one the service accepts or reports why it cannot;
//!   over-long text is shortened with a visible `…`, never refused.
//! - `classify` is the only place that decides retry versus dead letter.

pub mod answer;
pub mod config;
pub mod fitting;
pub mod request;
pub mod test_mark;

pub mod console;
pub mod discord;
pub mod dooray;
pub mod google_chat;
pub mod jandi;
pub mod mattermost;
pub mod slack;
pub mod slack_bot;
pub mod teams;
pub mod webhook;

use std::sync::LazyLock;
use std::time::SystemTime;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

pub use answer::{
    Answer, DEFAULT_RETRY_AFTER, MAX_RETRY_AFTER, Verdict, classify, parse_retry_after,
};
pub use config::{Checks, DestinationConfig, Options};
pub use request::{Header, HttpRequest, Outgoing, Request, RequestError};

use crate::locale::Locale;

/// Every service bizrelay can post to. Adding a service is adding its file and one line here.
pub const ALL: &[DestinationKind] = &[
    slack::KIND,
    teams::KIND,
    console::KIND,
    dooray::KIND,
    jandi::KIND,
    google_chat::KIND,
    discord::KIND,
    mattermost::KIND,
    webhook::KIND,
    slack_bot::KIND,
];

/// Names every service has a built-in template for, in this order in [`Builtins`].
pub const BUILTIN_NAMES: [&str; 7] = [
    "template_status",
    "message_result",
    "unknown_event",
    "message_digest",
    "rate_firing",
    "rate_resolved",
    "digest_resolved",
];

/// A service's built-in templates of one locale: `(name, source)` in [`BUILTIN_NAMES`] order.
pub type Builtins = [(&'static str, &'static str); 7];

/// The built-ins of a service for every locale, compiled in from
/// `templates/<service>/<locale>/<name>.hbs` (indexed by [`Locale`] as `usize`).
macro_rules! builtins {
    ($service:literal) => {
        [
            builtins!(@locale $service, "en"),
            builtins!(@locale $service, "ko"),
        ]
    };
    (@locale $service:literal, $locale:literal) => {
        [
            ("template_status", include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/templates/", $service, "/", $locale, "/template_status.hbs"))),
            ("message_result", include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/templates/", $service, "/", $locale, "/message_result.hbs"))),
            ("unknown_event", include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/templates/", $service, "/", $locale, "/unknown_event.hbs"))),
            ("message_digest", include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/templates/", $service, "/", $locale, "/message_digest.hbs"))),
            ("rate_firing", include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/templates/", $service, "/", $locale, "/rate_firing.hbs"))),
            ("rate_resolved", include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/templates/", $service, "/", $locale, "/rate_resolved.hbs"))),
            ("digest_resolved", include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/templates/", $service, "/", $locale, "/digest_resolved.hbs"))),
        ]
    };
}
pub(crate) use builtins;

/// Messages per second (`None`: unlimited) and how many may go back to back.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pacing {
    pub rate: Option<f64>,
    pub burst: u32,
}

/// A rendered body that breaks a rule truncation cannot repair.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum LimitError {
    #[error("output is not valid JSON: {0}")]
    NotJson(String),
    #[error("{0}")]
    Shape(String),
}

/// What a fallback message says when a template fails.
#[derive(Debug, Clone, Default)]
pub struct FallbackInfo {
    pub title: String,
    pub facts: Vec<(String, String)>,
}

/// One chat service. Implementations are unit structs, one per file, listed in [`ALL`].
pub trait ChatService: Sync {
    /// The `type` of its destinations in the config.
    fn name(&self) -> &'static str;

    /// Whether bodies are JSON (every service but the console).
    fn is_json(&self) -> bool {
        true
    }

    /// Pacing when the destination sets none.
    fn default_pacing(&self) -> Pacing {
        Pacing {
            rate: Some(1.0),
            burst: 3,
        }
    }

    /// Whether the service drops messages over its pace without saying so (then `check`
    /// warns about message results sent one by one rather than as digests).
    fn drops_excess_silently(&self) -> bool {
        false
    }

    /// Settings this type takes besides the common ones (`type`, `url`, pacing, `timeout`,
    /// `locale`).
    fn settings(&self) -> &'static [&'static str] {
        &[]
    }

    /// Checks the destination's `url` and settings (unknown settings are already reported).
    fn check(&self, dest: &DestinationConfig, checks: &mut Checks);

    /// Escapes untrusted text so no markup or mention in it takes effect: what `{{json}}` does
    /// to every string, and `{{value}}` before the JSON string escaping.
    fn escape_text(&self, s: &str) -> String;

    /// What `{{value}}` writes: the text escaped, then made safe inside a JSON string.
    fn escape(&self, s: &str) -> String {
        crate::text::json_string_escape(&self.escape_text(s))
    }

    /// The built-in templates of a locale.
    fn builtins(&self, locale: Locale) -> &'static Builtins;

    /// Built-in templates particular to this service (besides [`BUILTIN_NAMES`]), such as
    /// the thread templates of `slack_bot`.
    fn extra_builtins(&self, _locale: Locale) -> &'static [(&'static str, &'static str)] {
        &[]
    }

    /// Repairs a parsed body so it fits the service's limits, or says why it cannot.
    fn fit_value(&self, body: &mut Value) -> Result<(), LimitError>;

    /// Parses a rendered body and makes it fit.
    fn fit(&self, rendered: &str) -> Result<String, LimitError> {
        let mut value = fitting::parse_json(rendered)?;
        self.fit_value(&mut value)?;
        Ok(value.to_string())
    }

    /// Every documented rule the parsed body breaks (looks only; written apart from `fit` so
    /// `check` and the tests do not trust the code that shaped the body).
    fn audit(&self, body: &Value, bytes: usize) -> Vec<String>;

    /// Every rule the final body breaks; empty when it is fine to send.
    fn violations(&self, body: &str) -> Vec<String> {
        match serde_json::from_str::<Value>(body) {
            Ok(v) => self.audit(&v, body.len()),
            Err(e) => vec![format!("not valid JSON: {e}")],
        }
    }

    /// A plain message built without templates, sent when a template fails at run time.
    fn fallback(&self, info: &FallbackInfo) -> String;

    /// JSON pointers to the notification text and the header of a body in the built-in
    /// templates' shape, where `send-test` puts its TEST marker ([`test_mark`]). A text
    /// service (the console) has none: its first line is marked.
    fn headline_fields(&self) -> &'static [&'static str] {
        &[]
    }

    /// The request that delivers one stored body.
    fn request(
        &self,
        dest: &DestinationConfig,
        out: &Outgoing<'_>,
    ) -> Result<Request, RequestError> {
        request::json_post(dest, out, out.body.to_string(), Vec::new())
    }

    /// What an answer means: status, headers and body are all there to read.
    fn classify(&self, answer: &Answer, now: SystemTime) -> Verdict {
        answer::classify_http(answer, now)
    }

    /// The answer in words for logs and dead-letter reasons (services whose answers carry
    /// error codes explain them; by default the body's excerpt).
    fn explain(&self, answer: &Answer) -> String {
        answer.detail.clone()
    }
}

/// A destination type: a handle on its [`ChatService`], compared and ordered by name.
#[derive(Clone, Copy)]
pub struct DestinationKind(&'static dyn ChatService);

impl DestinationKind {
    pub const fn of(service: &'static dyn ChatService) -> DestinationKind {
        DestinationKind(service)
    }

    /// The type named so in the config.
    pub fn parse(name: &str) -> Option<DestinationKind> {
        ALL.iter().copied().find(|k| k.as_str() == name)
    }

    pub fn as_str(self) -> &'static str {
        self.0.name()
    }

    pub fn service(self) -> &'static dyn ChatService {
        self.0
    }
}

impl std::ops::Deref for DestinationKind {
    type Target = dyn ChatService;
    fn deref(&self) -> &Self::Target {
        self.0
    }
}

impl std::fmt::Debug for DestinationKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq for DestinationKind {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}
impl Eq for DestinationKind {}

impl std::hash::Hash for DestinationKind {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl PartialOrd for DestinationKind {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for DestinationKind {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl Serialize for DestinationKind {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

static NAMES: LazyLock<Vec<&'static str>> =
    LazyLock::new(|| ALL.iter().map(|k| k.as_str()).collect());

impl<'de> Deserialize<'de> for DestinationKind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<DestinationKind, D::Error> {
        let name = String::deserialize(d)?;
        DestinationKind::parse(&name)
            .ok_or_else(|| serde::de::Error::unknown_variant(&name, &NAMES))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_registry_has_unique_names_and_parses_them() {
        let mut names: Vec<&str> = ALL.iter().map(|k| k.as_str()).collect();
        for name in &names {
            assert_eq!(
                DestinationKind::parse(name).map(|k| k.as_str()),
                Some(*name)
            );
        }
        names.sort();
        names.dedup();
        assert_eq!(names.len(), ALL.len());
        let err = serde_json::from_str::<DestinationKind>("\"pager\"").unwrap_err();
        assert!(err.to_string().contains("unknown variant `pager`"), "{err}");
        assert!(err.to_string().contains("`dooray`"), "{err}");
        assert_eq!(
            serde_json::to_string(&google_chat::KIND).unwrap(),
            "\"google_chat\""
        );
    }

    #[test]
    fn fit_rejects_non_json_for_chat_destinations() {
        let err = slack::KIND.fit("{\"text\": \"a\",}").unwrap_err();
        assert!(matches!(err, LimitError::NotJson(_)), "{err}");
        assert_eq!(console::KIND.fit("plain").unwrap(), "plain");
    }
}
