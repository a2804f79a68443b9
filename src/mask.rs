//! Masking personal data and secrets before they reach a chat message or a log line.
//!
//! Invariant: a masked phone number keeps at most its first three and last four characters;
//! anything shorter than eight characters keeps only its last two. Masking never fails.

/// Masks a recipient number: `01012345678` → `010****5678`.
pub fn mask_phone(number: &str) -> String {
    let chars: Vec<char> = number.trim().chars().collect();
    let n = chars.len();
    if n == 0 {
        return String::new();
    }
    let (head, tail) = if n >= 8 { (3, 4) } else { (0, n.min(2)) };
    let tail = if n <= 2 { 0 } else { tail };
    chars
        .iter()
        .enumerate()
        .map(|(i, c)| {
            if i < head || i >= n - tail || !c.is_ascii_alphanumeric() {
                *c
            } else {
                '*'
            }
        })
        .collect()
}

/// Masks anything in free text that looks like a Korean mobile number (`010-1234-5678`,
/// `01012345678`, `+82 10 1234 5678`). Used on hooks of unknown shape, whose fields we do not
/// know, so a number in an unexpected place is still not relayed.
pub fn mask_phone_like(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let mut copied = 0;
    while i < bytes.len() {
        let starts_number = matches!(bytes[i], b'+' | b'(') || bytes[i].is_ascii_digit();
        let after_boundary = i == 0 || !bytes[i - 1].is_ascii_alphanumeric();
        if starts_number && after_boundary {
            // Take the longest run of digits and separators (`-`, ` `, `.`, `(`, `)`).
            let separator = |b: u8| matches!(b, b'-' | b' ' | b'.' | b'(' | b')');
            let mut j = i + 1;
            while j < bytes.len() && (bytes[j].is_ascii_digit() || separator(bytes[j])) {
                j += 1;
            }
            // Do not swallow a trailing separator.
            while j > i && separator(bytes[j - 1]) {
                j -= 1;
            }
            let run = &text[i..j];
            let digits: String = run.chars().filter(char::is_ascii_digit).collect();
            let before_boundary = j == bytes.len() || !bytes[j].is_ascii_alphanumeric();
            if before_boundary && looks_like_mobile(&digits) {
                out.push_str(&text[copied..i]);
                out.push_str(&mask_phone(run));
                copied = j;
            }
            i = j.max(i + 1);
        } else {
            i += 1;
        }
    }
    out.push_str(&text[copied..]);
    out
}

fn looks_like_mobile(digits: &str) -> bool {
    let local = digits.strip_prefix("82").map(|rest| format!("0{rest}"));
    let d = local.as_deref().unwrap_or(digits);
    (d.len() == 10 || d.len() == 11) && d.starts_with("01")
}

/// The part of a URL that is safe to log: scheme and host, never the path (for Slack, Teams
/// and Discord the path is the credential).
pub fn url_origin(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let host = rest.split(['/', '?', '#']).next().unwrap_or("");
            let host = host.rsplit('@').next().unwrap_or(host);
            format!("{scheme}://{host}/…")
        }
        None => "(invalid url)".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_masking_table() {
        let cases = [
            ("01012345678", "010****5678"),
            ("0101234567", "010***4567"),
            ("010-1234-5678", "010-****-5678"),
            ("+821012345678", "+82******5678"),
            ("1234567", "*****67"),
            ("12", "**"),
            ("", ""),
            (" 01012345678 ", "010****5678"),
        ];
        for (input, want) in cases {
            assert_eq!(mask_phone(input), want, "{input}");
        }
    }

    #[test]
    fn phone_like_text_is_masked_and_other_numbers_kept() {
        let text =
            "call 010-1234-5678 or 01098765432, +82 10 1111 2222; order 20261128101455 seq 12";
        let masked = mask_phone_like(text);
        assert!(!masked.contains("1234-5678"), "{masked}");
        assert!(!masked.contains("98765432"), "{masked}");
        assert!(!masked.contains("1111 2222"), "{masked}");
        assert!(
            masked.contains("20261128101455"),
            "non-phone numbers stay: {masked}"
        );
        assert!(masked.contains("seq 12"), "{masked}");
        assert_eq!(mask_phone_like("user-1001"), "user-1001");
        for dotted in ["010.1234.5678", "(010) 1234-5678", "(010)1234.5678"] {
            let masked = mask_phone_like(&format!("call {dotted}."));
            assert!(
                !masked.contains("1234") && masked.contains("5678"),
                "{dotted}: {masked}"
            );
        }
        assert_eq!(
            mask_phone_like("version 1.2.3 (beta)"),
            "version 1.2.3 (beta)"
        );
        assert_eq!(
            mask_phone_like("주문 01012345678 건"),
            "주문 010****5678 건"
        );
        assert_eq!(mask_phone_like(""), "");
    }

    #[test]
    fn url_origin_hides_the_path_and_userinfo() {
        assert_eq!(
            url_origin("https://hooks.slack.com/services/T0/B0/XXXX"),
            "https://hooks.slack.com/…"
        );
        assert_eq!(url_origin("http://user:pw@h:8080/p?q"), "http://h:8080/…");
        assert_eq!(url_origin("nonsense"), "(invalid url)");
    }
}
