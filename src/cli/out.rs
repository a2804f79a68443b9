//! Everything the CLI prints goes through here.
//!
//! Invariants: text reaches the terminal only through [`text::terminal_safe`] (JSON through
//! [`text::terminal_safe_json`]), so an ESC, CR or bidi control in a hookId, a reason or a
//! payload is shown as an escape instead of acting on the operator's terminal; table cells are
//! escaped with their newlines ([`cell`]) so no value can start a row of its own. A closed
//! stdout or stderr (`| head`) ends the output quietly: printing never panics.

use std::borrow::Cow;
use std::io::Write;

use crate::text;

/// One line (or block: newlines and tabs kept) on stdout.
pub fn line(s: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", text::terminal_safe(s, true));
}

/// One line (or block) on stderr.
pub fn err(s: &str) {
    let mut out = std::io::stderr().lock();
    let _ = writeln!(out, "{}", text::terminal_safe(s, true));
}

/// A value that must stay on one line: a table cell, a label.
pub fn cell(s: &str) -> Cow<'_, str> {
    text::terminal_safe(s, false)
}

/// A JSON document on stdout, pretty-printed.
pub fn json(v: &serde_json::Value) {
    let pretty = serde_json::to_string_pretty(v).unwrap_or_default();
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", text::terminal_safe_json(&pretty));
}
