//! Microsoft Teams Workflows webhooks: one Adaptive Card 1.4 per message ([`fit`]), Markdown
//! line breaks and defused links for untrusted text, the audit, the fallback card.
//!
//! Invariant: untrusted text keeps its lines and cannot produce a disguised link.

mod audit;
pub mod fit;

use serde_json::Value;

use super::config::UrlShape;
use super::{
    Builtins, ChatService, Checks, DestinationConfig, DestinationKind, FallbackInfo, LimitError,
    builtins,
};
use crate::locale::Locale;

pub use fit::{CARD_CONTENT_TYPE, MAX_BYTES};

pub struct Teams;
pub const KIND: DestinationKind = DestinationKind::of(&Teams);

static TEMPLATES: [Builtins; 2] = builtins!("teams");

/// Workflows URLs live on many Power Platform hosts: any host.
const URL: UrlShape = UrlShape {
    what: "a Teams Workflows webhook",
    hosts: &[],
    path_prefix: "",
    example: "https://….logic.azure.com/workflows/…",
};

impl ChatService for Teams {
    fn name(&self) -> &'static str {
        "teams"
    }

    fn check(&self, dest: &DestinationConfig, checks: &mut Checks) {
        checks.webhook_url(dest, &URL);
    }

    fn escape_text(&self, s: &str) -> String {
        crate::text::teams_text(s)
    }

    fn builtins(&self, locale: Locale) -> &'static Builtins {
        &TEMPLATES[locale as usize]
    }

    fn fit_value(&self, body: &mut Value) -> Result<(), LimitError> {
        fit::fit(body)
    }

    fn audit(&self, body: &Value, bytes: usize) -> Vec<String> {
        audit::violations(body, bytes)
    }

    fn headline_fields(&self) -> &'static [&'static str] {
        &[
            "/summary",
            "/attachments/0/content/fallbackText",
            "/attachments/0/content/body/0/text",
        ]
    }

    fn fallback(&self, info: &FallbackInfo) -> String {
        fit::fallback(info)
    }
}
