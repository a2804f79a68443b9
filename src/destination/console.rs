//! The console destination: plain text on stdout, for trying bizrelay out.
//!
//! Invariant: output has no control characters other than newlines and tabs (reviewer text
//! cannot move the cursor or recolour the terminal) and is at most [`MAX_CHARS`] long.

use super::FallbackInfo;
use crate::text::{strip_controls, truncate};

pub const MAX_CHARS: usize = 16_000;

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
