//! Slack incoming webhooks: mrkdwn escaping, Block Kit limits ([`fit`]), the audit, the
//! fallback body. Posts are plain JSON POSTs; answers follow the shared HTTP rule.
//!
//! Invariant: untrusted text is escaped for mrkdwn (`&`, `<`, `>`), so `<!channel>`, `<@U123>`
//! and disguised links from hook text never take effect.

mod audit;
pub mod fit;

use serde_json::Value;

use super::config::UrlShape;
use super::{
    Builtins, ChatService, Checks, DestinationConfig, DestinationKind, FallbackInfo, LimitError,
    builtins,
};
use crate::locale::Locale;

pub use fit::{
    BLOCK_TEXT_BUDGET, MAX_BLOCKS, MAX_CONTEXT_ELEMENTS, MAX_FIELD_TEXT, MAX_FIELDS, MAX_HEADER,
    MAX_TEXT, MAX_TOP_TEXT,
};

pub struct Slack;
pub const KIND: DestinationKind = DestinationKind::of(&Slack);

static TEMPLATES: [Builtins; 2] = builtins!("slack");

/// Any host: Slack's own, or a proxy in front of it.
const URL: UrlShape = UrlShape {
    what: "a Slack incoming webhook",
    hosts: &[],
    path_prefix: "",
    example: "https://hooks.slack.com/services/…",
};

impl ChatService for Slack {
    fn name(&self) -> &'static str {
        "slack"
    }

    fn check(&self, dest: &DestinationConfig, checks: &mut Checks) {
        checks.webhook_url(dest, &URL);
    }

    fn escape_text(&self, s: &str) -> String {
        crate::text::slack_escape(s)
    }

    fn builtins(&self, locale: Locale) -> &'static Builtins {
        &TEMPLATES[locale as usize]
    }

    fn fit_value(&self, body: &mut Value) -> Result<(), LimitError> {
        fit::fit(body)
    }

    fn audit(&self, body: &Value, _bytes: usize) -> Vec<String> {
        audit::violations(body)
    }

    fn headline_fields(&self) -> &'static [&'static str] {
        &["/text", "/blocks/0/text/text"]
    }

    fn fallback(&self, info: &FallbackInfo) -> String {
        fit::fallback(info)
    }
}
