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
            let maskable = c.is_ascii_alphanumeric() || digit(*c).is_some();
            if i < head || i >= n - tail || !maskable {
                *c
            } else {
                '*'
            }
        })
        .collect()
}

/// The value of an ASCII or full-width digit (`０`..`９`, as Korean and Japanese input methods
/// produce them).
fn digit(c: char) -> Option<char> {
    match c {
        '0'..='9' => Some(c),
        '\u{FF10}'..='\u{FF19}' => char::from_digit(c as u32 - 0xFF10, 10),
        _ => None,
    }
}

/// What may stand between the digit groups of a written phone number, ASCII or full-width.
fn separator(c: char) -> bool {
    matches!(
        c,
        '-' | ' ' | '.' | '(' | ')' | '\u{A0}' | '\u{2010}'
            ..='\u{2015}' | '\u{3000}' | '\u{FF08}' | '\u{FF09}' | '\u{FF0D}' | '\u{FF0E}'
    )
}

/// A number has at most this many digit groups (`+82 10 1234 5678`).
const MAX_GROUPS: usize = 5;

/// Masks anything in free text that looks like a Korean mobile number (`010-1234-5678`,
/// `01012345678`, `+82 10 1234 5678`, `ID01077776666`, full-width `０１０…`). Used on hooks of
/// unknown shape, whose fields we do not know, so a number in an unexpected place is still not
/// relayed. A number is a run of digit groups not preceded or followed by another digit:
/// letters may touch it (ids such as `ID01077776666` embed numbers).
pub fn mask_phone_like(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        match phone_at(&chars, i) {
            Some(end) => {
                let run: String = chars[i..end].iter().collect();
                out.push_str(&mask_phone(&run));
                i = end;
            }
            None => {
                out.push(chars[i]);
                i += 1;
            }
        }
    }
    out
}

/// Where a mobile number that starts at `start` ends: the longest run of at most
/// [`MAX_GROUPS`] digit groups whose digits make one.
fn phone_at(chars: &[char], start: usize) -> Option<usize> {
    let first = chars[start];
    let opens = matches!(first, '+' | '(' | '\u{FF0B}' | '\u{FF08}');
    if (start > 0 && digit(chars[start - 1]).is_some()) || !(opens || digit(first).is_some()) {
        return None;
    }
    let mut digits = String::new();
    let mut groups = 0;
    let mut found = None;
    let mut j = if opens { start + 1 } else { start };
    while j < chars.len() && groups < MAX_GROUPS && digits.len() <= 13 {
        if let Some(d) = digit(chars[j]) {
            digits.push(d);
            j += 1;
            if chars.get(j).and_then(|c| digit(*c)).is_none() {
                groups += 1;
                if looks_like_mobile(&digits) {
                    found = Some(j);
                }
            }
        } else if separator(chars[j]) && !digits.is_empty() || chars[j] == '(' {
            j += 1;
        } else {
            break;
        }
    }
    found
}

fn looks_like_mobile(digits: &str) -> bool {
    let local = digits.strip_prefix("82").map(|rest| {
        if rest.starts_with('0') {
            rest.to_string()
        } else {
            format!("0{rest}")
        }
    });
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
    fn numbers_glued_to_letters_full_width_or_after_other_numbers_are_masked() {
        let cases = [
            ("ID01077776666", "ID010****6666"),
            ("01077776666번", "010****6666번"),
            ("x01077776666y", "x010****6666y"),
            ("０１０７７７７６６６６", "０１０****６６６６"),
            ("０１０－７７７７－６６６６", "０１０－****－６６６６"),
            ("tel:+82-10-7777-6666", "tel:+82-**-****-6666"),
            ("＋８２ １０ ７７７７ ６６６６", "＋８２ ** **** ６６６６"),
            ("+82 010 7777 6666", "+82 *** **** 6666"),
            ("seq 12 010-7777-6666", "seq 12 010-****-6666"),
            ("010-7777-6666 12", "010-****-6666 12"),
            ("821077776666", "821*****6666"),
        ];
        for (input, want) in cases {
            assert_eq!(mask_phone_like(input), want, "{input}");
        }
        // Longer digit runs are other numbers (order ids, timestamps), not phones.
        for kept in ["order 20261128101455", "a101077776666", "1010777766660"] {
            let masked = mask_phone_like(kept);
            assert!(
                masked.ends_with(&kept[kept.len() - 4..]),
                "{kept}: {masked}"
            );
        }
        assert_eq!(
            mask_phone_like("order 20261128101455"),
            "order 20261128101455"
        );
        assert_eq!(mask_phone_like("1010777766660"), "1010777766660");
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
