//! Redacting a destination URL's secret parts from text that came back from the destination
//! (an error page, a JSON error) before that text is kept or shown: dead-letter reasons, log
//! lines, `send-test` output.
//!
//! For Slack, Teams and Discord the URL is the credential: path tokens
//! (`/services/T0/B0/XXXX`, `/workflows/<id>`) and query values (Teams' `sig`). An answer may
//! echo them raw, URL-encoded (`%2Fservices%2FT0...`) or JSON-escaped (`\/services\/T0...`).
//!
//! Invariants: after [`redact_url_secrets`], no secret part of the URL appears in the text in
//! any of those encodings, not even cut off at the end of an excerpt (a cut-off prefix of four
//! characters or more is redacted too); the scheme and host stay readable. Pure, never fails.

use percent_encoding::{NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

/// What replaces a secret.
const REDACTED: &str = "…";

/// Path segments and query values shorter than this are left alone when they look like words
/// (`/services/`, `sv=1.0`): too short to be a token and too common to cut out of an answer.
const MIN_FRAGMENT: usize = 6;

/// A secret cut off at the end of the text is redacted from this many characters on.
const MIN_TAIL: usize = 4;

/// Query keys whose values are credentials whatever they look like.
const SECRET_KEYS: &[&str] = &[
    "sig",
    "signature",
    "token",
    "access_token",
    "key",
    "api_key",
    "apikey",
    "secret",
    "password",
    "code",
    "auth",
];

/// Removes every secret part of `url` from `text`, in every encoding an answer may use.
pub fn redact_url_secrets(text: &str, url: &str) -> String {
    let variants = variants(&secret_parts(url));
    let mut out = text.to_string();
    for v in &variants {
        if out.contains(v.as_str()) {
            out = out.replace(v.as_str(), &replacement(v));
        }
    }
    redact_cut_tail(out, &variants)
}

/// The parts of a URL that are credentials: the path with its query, the path, the query, each
/// token-like path segment and query value, and any user info.
fn secret_parts(url: &str) -> Vec<String> {
    let Ok(u) = url::Url::parse(url) else {
        // Not a URL we can take apart: the whole string is the secret.
        return vec![url.to_string()];
    };
    let mut parts = Vec::new();
    let path = u.path();
    if let Some(query) = u.query() {
        parts.push(format!("{path}?{query}"));
        parts.push(query.to_string());
        for pair in query.split('&') {
            let (key, value) = pair.split_once('=').unwrap_or(("", pair));
            let key = percent_decode_str(key)
                .decode_utf8_lossy()
                .to_ascii_lowercase();
            if !value.is_empty() && (SECRET_KEYS.contains(&key.as_str()) || token_like(value)) {
                parts.push(value.to_string());
            }
        }
    }
    if path.len() > 1 {
        parts.push(path.to_string());
        // The path without its leading slash, as an answer may quote it relative.
        parts.push(path[1..].to_string());
        parts.extend(
            path.split('/')
                .filter(|s| token_like(s))
                .map(str::to_string),
        );
    }
    if let Some(password) = u.password() {
        parts.push(password.to_string());
    }
    if !u.username().is_empty() {
        parts.push(u.username().to_string());
    }
    parts
}

/// Long enough to be a token and not a plain lower-case word.
fn token_like(s: &str) -> bool {
    s.chars().count() >= MIN_FRAGMENT && !s.chars().all(|c| c.is_ascii_lowercase())
}

/// Every spelling of each part an answer may hold, longest first (so a whole path goes before
/// its segments).
fn variants(parts: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for part in parts {
        let decoded = percent_decode_str(part).decode_utf8_lossy().into_owned();
        for base in [part.as_str(), decoded.as_str()] {
            // Encoders differ on `-._~`: some encode them, most leave them alone.
            let every = utf8_percent_encode(base, NON_ALPHANUMERIC).to_string();
            let unreserved = every
                .replace("%2D", "-")
                .replace("%2E", ".")
                .replace("%5F", "_")
                .replace("%7E", "~");
            for encoded in [every, unreserved] {
                out.push(lower_hex(&encoded));
                out.push(encoded);
            }
            out.push(base.to_string());
            out.push(base.replace('/', "\\/"));
            out.push(base.replace('/', "\\u002f"));
            out.push(base.replace('/', "\\u002F"));
        }
    }
    out.retain(|v| v.chars().count() >= 2);
    out.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
    out.dedup();
    out
}

/// `%2F` → `%2f`: percent-encoding is case-insensitive, and encoders differ.
fn lower_hex(encoded: &str) -> String {
    let mut out = String::with_capacity(encoded.len());
    let mut rest = encoded;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        let end = (at + 3).min(rest.len());
        out.push_str(&rest[at..end].to_ascii_lowercase());
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// The marker for one spelling, keeping a leading slash in that spelling's own encoding so
/// `https://host/…` still reads as a URL.
fn replacement(variant: &str) -> String {
    for slash in ["/", "\\/", "\\u002f", "\\u002F", "%2F", "%2f"] {
        if variant.starts_with(slash) {
            return format!("{slash}{REDACTED}");
        }
    }
    REDACTED.to_string()
}

/// An excerpt may end inside a secret (the answer was cut after so many bytes): a text that ends
/// with the start of a spelling has that start redacted, unless that start is a plain word.
fn redact_cut_tail(text: String, variants: &[String]) -> String {
    let longest = variants
        .iter()
        .flat_map(|v| {
            v.char_indices()
                .map(|(i, _)| i)
                .skip(MIN_TAIL)
                .map(move |cut| &v[..cut])
        })
        // A plain word ("workflow") at the end is a word, not half a token.
        .filter(|prefix| !prefix.chars().all(|c| c.is_ascii_lowercase()))
        .filter(|prefix| text.ends_with(prefix))
        .max_by_key(|prefix| prefix.len());
    match longest {
        Some(prefix) => {
            let keep = text.len() - prefix.len();
            format!("{}{}", &text[..keep], replacement(prefix))
        }
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEAMS: &str = "https://prod-12.westus.logic.azure.com:443/workflows/0a1b2c3d4e5f60718293a4b5c6d7e8f9/triggers/manual/paths/invoke?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=Abc-12_xyZsecretSIG987";
    const SLACK: &str =
        "https://hooks.slack.com/services/T0ABCDEFG/B0HIJKLMN/XXXXSECRETtoken24chars";

    /// Parts of the test URLs that must never survive, in any spelling.
    const SECRETS: &[&str] = &[
        "0a1b2c3d4e5f60718293a4b5c6d7e8f9",
        "Abc-12_xyZsecretSIG987",
        "XXXXSECRETtoken24chars",
        "T0ABCDEFG",
        "B0HIJKLMN",
    ];

    fn assert_clean(out: &str) {
        for s in SECRETS {
            assert!(!out.contains(s), "{s} survived in {out}");
            let encoded = utf8_percent_encode(s, NON_ALPHANUMERIC).to_string();
            assert!(!out.contains(&encoded), "{encoded} survived in {out}");
        }
    }

    #[test]
    fn every_encoding_of_every_secret_part_is_redacted() {
        let json_escaped = |u: &str| u.replace('/', "\\/");
        let encoded = |u: &str| utf8_percent_encode(u, NON_ALPHANUMERIC).to_string();
        let cases: Vec<(String, &str, &str)> = vec![
            // (text, url, what must remain readable)
            (
                format!("no_service for {SLACK}"),
                SLACK,
                "no_service for https://hooks.slack.com/…",
            ),
            (
                format!("{{\"url\":\"{}\"}}", json_escaped(SLACK)),
                SLACK,
                "{\"url\":\"https:\\/\\/hooks.slack.com\\/…\"}",
            ),
            (
                format!("redirect={}", encoded(SLACK)),
                SLACK,
                "redirect=https%3A%2F%2Fhooks%2Eslack%2Ecom%2F…",
            ),
            (
                format!("redirect={}", lower_hex(&encoded(SLACK))),
                SLACK,
                "redirect=https%3a%2f%2fhooks%2eslack%2ecom%2f…",
            ),
            (
                "token XXXXSECRETtoken24chars is revoked".to_string(),
                SLACK,
                "token … is revoked",
            ),
            (
                format!("Workflow not found: {TEAMS}"),
                TEAMS,
                "Workflow not found: https://prod-12.westus.logic.azure.com:443/…",
            ),
            (
                format!(
                    "{{\"error\":{{\"message\":\"The request to '{}' failed\"}}}}",
                    json_escaped(TEAMS)
                ),
                TEAMS,
                "'https:\\/\\/prod-12.westus.logic.azure.com:443\\/…' failed",
            ),
            (
                format!("callback={}", encoded(TEAMS)),
                TEAMS,
                "callback=https",
            ),
            (
                "invalid signature Abc-12_xyZsecretSIG987 for workflow".to_string(),
                TEAMS,
                "invalid signature … for workflow",
            ),
            ("sig=Abc-12_xyZsecretSIG987".to_string(), TEAMS, "sig=…"),
            (
                "path /workflows/0a1b2c3d4e5f60718293a4b5c6d7e8f9 unknown".to_string(),
                TEAMS,
                "path /workflows/… unknown",
            ),
            (
                "id 0a1b2c3d4e5f60718293a4b5c6d7e8f9 unknown".to_string(),
                TEAMS,
                "id … unknown",
            ),
        ];
        for (text, url, readable) in &cases {
            let out = redact_url_secrets(text, url);
            assert_clean(&out);
            assert!(out.contains(readable), "{text}\n→ {out}\nwants {readable}");
        }
    }

    #[test]
    fn words_and_other_text_stay() {
        let text = "HTTP 404: Not Found (services are gone; api-version 2016 is old; sv=1.0)";
        assert_eq!(
            redact_url_secrets(text, TEAMS),
            text.replace("2016-06-01", "…")
        );
        assert_eq!(redact_url_secrets("ok", SLACK), "ok");
        assert_eq!(redact_url_secrets("", SLACK), "");
        // A URL with no path has nothing to hide.
        assert_eq!(
            redact_url_secrets("see http://example.com/", "http://example.com/"),
            "see http://example.com/"
        );
    }

    #[test]
    fn a_secret_cut_off_at_the_end_is_redacted() {
        for cut in [4, 10, 30] {
            let text = format!("error at {}", &SLACK[..SLACK.len() - 30 + cut]);
            let out = redact_url_secrets(&text, SLACK);
            assert_clean(&out);
            assert!(!out.contains("XXXX"), "{out}");
        }
        let out = redact_url_secrets("token XXXXSECRETto", SLACK);
        assert_eq!(out, "token …");
        // Fewer than four characters of a secret are left alone (they reveal nothing).
        assert_eq!(redact_url_secrets("abc XXX", SLACK), "abc XXX");
    }

    #[test]
    fn user_info_and_unparsable_urls() {
        let url = "https://bot:pa55word99@chat.example/hook";
        let out = redact_url_secrets("auth bot:pa55word99 refused", url);
        assert!(!out.contains("pa55word99"), "{out}");
        let out = redact_url_secrets("got not a url at all here", "not a url at all");
        assert_eq!(out, "got … here");
    }
}
