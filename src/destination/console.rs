//! The console destination: plain text on stdout, for trying bizrelay out.
//!
//! Invariant: output has no control characters other than newlines and tabs (reviewer text
//! cannot move the cursor or recolour the terminal) and is at most [`MAX_CHARS`] long.

use serde_json::Value;

use super::{
    Builtins, ChatService, Checks, DestinationConfig, DestinationKind, FallbackInfo, LimitError,
    Outgoing, Pacing, Request, RequestError, builtins,
};
use crate::locale::Locale;
use crate::text::{strip_controls, truncate};

pub const MAX_CHARS: usize = 16_000;

pub struct Console;
pub const KIND: DestinationKind = DestinationKind::of(&Console);

static TEMPLATES: [Builtins; 2] = builtins!("console");

impl ChatService for Console {
    fn name(&self) -> &'static str {
        "console"
    }

    fn is_json(&self) -> bool {
        false
    }

    fn default_pacing(&self) -> Pacing {
        Pacing {
            rate: None,
            burst: 3,
        }
    }

    fn check(&self, dest: &DestinationConfig, checks: &mut Checks) {
        if dest.url.is_some() {
            checks.warn("url", "ignored for a console destination");
        }
    }

    /// `{{json}}` output is JSON, whose escaping already keeps control characters out.
    fn escape_text(&self, s: &str) -> String {
        s.to_string()
    }

    fn escape(&self, s: &str) -> String {
        strip_controls(s)
    }

    fn builtins(&self, locale: Locale) -> &'static Builtins {
        &TEMPLATES[locale as usize]
    }

    fn fit_value(&self, _body: &mut Value) -> Result<(), LimitError> {
        Ok(())
    }

    fn fit(&self, rendered: &str) -> Result<String, LimitError> {
        Ok(fit(rendered))
    }

    fn audit(&self, _body: &Value, _bytes: usize) -> Vec<String> {
        Vec::new()
    }

    fn violations(&self, _body: &str) -> Vec<String> {
        Vec::new()
    }

    fn fallback(&self, info: &FallbackInfo) -> String {
        fallback(info)
    }

    fn request(
        &self,
        _dest: &DestinationConfig,
        out: &Outgoing<'_>,
    ) -> Result<Request, RequestError> {
        Ok(Request::Stdout(out.body.to_string()))
    }
}

pub fn fit(rendered: &str) -> String {
    truncate(strip_controls(rendered).trim_end(), MAX_CHARS)
}

pub fn fallback(info: &FallbackInfo) -> String {
    let mut out = strip_controls(&info.title);
    for (k, v) in &info.facts {
        out.push_str(&format!("\n  {}: {}", strip_controls(k), strip_controls(v)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_output_is_safe_for_terminals() {
        assert_eq!(fit("a\u{1b}[2Jb\n\n"), "a[2Jb");
        assert_eq!(fit(&"x".repeat(MAX_CHARS + 10)).chars().count(), MAX_CHARS);
        let fb = fallback(&FallbackInfo {
            title: "t".into(),
            facts: vec![("k".into(), "v\u{7}".into())],
        });
        assert_eq!(fb, "t\n  k: v");
    }
}
