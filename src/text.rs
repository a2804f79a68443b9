//! Text helpers shared by templates and destination limits: Unicode-aware truncation with a
//! visible marker, and escaping for JSON strings and Slack mrkdwn.
//!
//! Invariant: lengths are counted in Unicode scalar values (what Slack counts), a truncated
//! string always ends with [`MARKER`] and never exceeds the limit, and truncation never splits a
//! Slack HTML entity (`&amp;`, `&lt;`, `&gt;`).

/// Appended to every shortened text so readers know something is missing.
pub const MARKER: char = '…';

/// A counted noun: `1 hook`, `2 hooks` (CLI output, readiness reasons, errors).
pub fn count(n: u64, one: &str, many: &str) -> String {
    let noun = if n == 1 { one } else { many };
    format!("{n} {noun}")
}

/// Shortens `s` to at most `max` characters, ending with [`MARKER`] when it had to cut.
pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    if max == 0 {
        return String::new();
    }
    let keep = max - 1;
    let cut = s.char_indices().nth(keep).map_or(s.len(), |(i, _)| i);
    let mut head = &s[..cut];
    // Do not leave half an entity such as "&am" behind.
    if let Some(amp) = head.rfind('&')
        && head.len() - amp < 5
        && !head[amp..].contains(';')
    {
        head = &head[..amp];
    }
    let mut out = String::with_capacity(head.len() + 3);
    out.push_str(head);
    out.push(MARKER);
    out
}

/// Escapes text for the inside of a JSON string literal (quotes, backslashes, control
/// characters and newlines).
pub fn json_string_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' || c == '\u{2028}' || c == '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out
}

/// Slack's mrkdwn escaping: exactly `&`, `<` and `>`, which is what stops `<!channel>`,
/// `<@U123>` and disguised links coming from untrusted text.
pub fn slack_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// Text for a Teams card: Adaptive Cards render TextBlocks as Markdown, where a single newline
/// is not a line break (a blank line is) and `[text](url)` becomes a link. Reviewer text must
/// keep its lines and must not produce disguised links, so newlines are doubled and the `](`
/// of a link gets an invisible zero-width space.
pub fn teams_text(s: &str) -> String {
    s.replace("\r\n", "\n")
        .replace('\n', "\n\n")
        .replace("](", "]\u{200B}(")
}

/// Unicode's bidirectional formatting controls: embeddings and overrides (U+202A..U+202E),
/// isolates (U+2066..U+2069) and the marks LRM, RLM and ALM. An override in untrusted text
/// makes `\u{202E}gnp.exe` read as `exe.png`.
pub fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}'
    )
}

/// Drops bidirectional controls (see [`is_bidi_control`]), so text reads in the order it is
/// stored.
pub fn strip_bidi(s: &str) -> std::borrow::Cow<'_, str> {
    if s.chars().any(is_bidi_control) {
        std::borrow::Cow::Owned(s.chars().filter(|c| !is_bidi_control(*c)).collect())
    } else {
        std::borrow::Cow::Borrowed(s)
    }
}

/// Whether a terminal could act on `c` rather than show it: C0 controls (ESC, CR, BEL...),
/// DEL, C1 controls (U+0080..U+009F, which some terminals take as ESC sequences) and the bidi
/// controls that reorder what follows.
fn acts_on_terminal(c: char) -> bool {
    c.is_control() || is_bidi_control(c)
}

/// Text for a terminal, as the logs show it: every character a terminal would act on becomes a
/// visible escape (`\r`, `\u{1b}`), so untrusted text cannot move the cursor, retitle the
/// window, colour the screen or forge a line. With `keep_lines`, newlines and tabs pass (a
/// multi-line block); without, they are escaped too (a table cell stays on its row).
pub fn terminal_safe(s: &str, keep_lines: bool) -> std::borrow::Cow<'_, str> {
    let kept = |c: char| keep_lines && (c == '\n' || c == '\t');
    if !s.chars().any(|c| acts_on_terminal(c) && !kept(c)) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            c if kept(c) || !acts_on_terminal(c) => out.push(c),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Serialised JSON for a terminal: serde_json escapes C0 controls but writes DEL, C1 and bidi
/// controls raw; they can only occur inside strings, where `\uXXXX` means the same.
pub fn terminal_safe_json(json: &str) -> std::borrow::Cow<'_, str> {
    if !json.chars().any(acts_on_terminal) {
        return std::borrow::Cow::Borrowed(json);
    }
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        if acts_on_terminal(c) && c != '\n' {
            out.push_str(&format!("\\u{:04x}", c as u32));
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// For plain-text output on a terminal: drops control characters (ANSI escapes included)
/// except newlines and tabs.
pub fn strip_controls(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control() || *c == '\n' || *c == '\t')
        .collect()
}

/// Puts a backslash before every character of `special` (Markdown's escape: CommonMark and
/// Discord show the character itself, without its meaning).
pub fn backslash_escape(s: &str, special: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if special.contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Puts a zero-width space after the first character of every `seq` in `s` (for syntax with
/// no escape, such as `@channel`, `](` or `<users/all>`: the text reads the same, the syntax
/// no longer matches).
pub fn break_within(s: &str, seq: &str) -> String {
    let Some(first) = seq.chars().next() else {
        return s.to_string();
    };
    let (head, tail) = seq.split_at(first.len_utf8());
    s.replace(seq, &format!("{head}\u{200B}{tail}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_counts_characters_and_marks_the_cut() {
        assert_eq!(truncate("hello", 5), "hello");
        assert_eq!(truncate("hello!", 5), "hell…");
        assert_eq!(truncate("검수자검수자", 4), "검수자…");
        assert_eq!(truncate("👍👍👍", 2), "👍…");
        assert_eq!(truncate("abc", 0), "");
        assert_eq!(truncate("", 3), "");
        for max in 1..12 {
            let t = truncate("x&amp;y&lt;z long text", max);
            assert!(t.chars().count() <= max, "{t}");
            assert!(
                !t.contains("&a…") && !t.contains("&am…") && !t.contains("&l…"),
                "{t}"
            );
        }
    }

    #[test]
    fn json_escaping_produces_valid_string_literals() {
        let nasty =
            "quote\" back\\slash\nnew\rline\ttab \u{1} \u{7f} \u{2028} }} <!channel> 한국어 👍";
        let literal = format!("\"{}\"", json_string_escape(nasty));
        let back: String = serde_json::from_str(&literal).unwrap();
        assert_eq!(back, nasty);
    }

    #[test]
    fn slack_escaping_is_exactly_three_characters() {
        assert_eq!(
            slack_escape("<!channel> & <http://evil|safe> *bold* _i_"),
            "&lt;!channel&gt; &amp; &lt;http://evil|safe&gt; *bold* _i_"
        );
    }

    #[test]
    fn teams_text_keeps_lines_and_defuses_links() {
        assert_eq!(teams_text("a\nb\r\nc"), "a\n\nb\n\nc");
        assert_eq!(
            teams_text("[safe](http://evil)"),
            "[safe]\u{200B}(http://evil)"
        );
        assert_eq!(teams_text("plain"), "plain");
    }

    #[test]
    fn bidi_controls_are_dropped_and_other_text_kept() {
        assert_eq!(strip_bidi("invoice\u{202E}gnp.exe"), "invoicegnp.exe");
        let all = "a\u{202A}\u{202B}\u{202C}\u{202D}\u{202E}\u{2066}\u{2067}\u{2068}\u{2069}\u{200E}\u{200F}\u{061C}b";
        assert_eq!(strip_bidi(all), "ab");
        let kept = "검수 반려 עברית عربي 👍 \u{200B}";
        assert!(matches!(strip_bidi(kept), std::borrow::Cow::Borrowed(_)));
        assert_eq!(strip_bidi(kept), kept);
    }

    #[test]
    fn terminal_text_shows_controls_as_escapes() {
        let hostile = "id\u{1b}]0;pwned\u{7}\r\u{1b}[2J\u{9b}31m\u{202e}fake\nrow\tcell\u{7f}";
        let cell = terminal_safe(hostile, false);
        assert_eq!(
            cell,
            "id\\u{1b}]0;pwned\\u{7}\\r\\u{1b}[2J\\u{9b}31m\\u{202e}fake\\nrow\\tcell\\u{7f}"
        );
        assert!(!cell.chars().any(acts_on_terminal));
        let block = terminal_safe(hostile, true);
        assert!(block.contains("fake\nrow\tcell"), "{block}");
        assert!(
            !block.contains('\u{1b}') && !block.contains('\r'),
            "{block}"
        );
        assert!(matches!(
            terminal_safe("검수 반려 👍 plain", false),
            std::borrow::Cow::Borrowed(_)
        ));
    }

    #[test]
    fn terminal_json_stays_the_same_json() {
        let value = serde_json::json!({"id": "a\u{1b}b\u{9b}c\u{202e}d\u{7f}", "n": 1});
        let pretty = serde_json::to_string_pretty(&value).unwrap();
        let safe = terminal_safe_json(&pretty);
        assert!(
            !safe.chars().any(|c| acts_on_terminal(c) && c != '\n'),
            "{safe}"
        );
        let back: serde_json::Value = serde_json::from_str(&safe).unwrap();
        assert_eq!(back, value);
    }

    #[test]
    fn markdown_escapes_and_broken_mentions() {
        assert_eq!(
            backslash_escape("*a* [x](y)", "*[]()"),
            "\\*a\\* \\[x\\]\\(y\\)"
        );
        assert_eq!(
            break_within("@all hi @here", "@"),
            "@\u{200B}all hi @\u{200B}here"
        );
        assert_eq!(break_within("[x](y)", "]("), "[x]\u{200B}(y)");
    }

    #[test]
    fn controls_are_stripped_for_terminals() {
        assert_eq!(strip_controls("a\u{1b}[31mb\nc\td\u{7}"), "a[31mb\nc\td");
    }
}
