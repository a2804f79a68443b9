//! The languages built-in templates and derived texts are written in, and the few formatting
//! rules that differ between them (dates, numbers).
//!
//! Invariant: every built-in text exists in every [`Locale`]; English is the default.

use serde::{Deserialize, Serialize};

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Locale {
    #[default]
    En,
    Ko,
}

impl Locale {
    pub const ALL: [Locale; 2] = [Locale::En, Locale::Ko];

    pub fn as_str(self) -> &'static str {
        match self {
            Locale::En => "en",
            Locale::Ko => "ko",
        }
    }

    /// `lang="…"` of a helper: `ko` is Korean, anything else English.
    pub fn parse_lang(lang: &str) -> Locale {
        if lang.eq_ignore_ascii_case("ko") {
            Locale::Ko
        } else {
            Locale::En
        }
    }

    /// The text for this locale.
    pub fn pick<'a>(self, en: &'a str, ko: &'a str) -> &'a str {
        match self {
            Locale::En => en,
            Locale::Ko => ko,
        }
    }

    /// An NHN date (`yyyy-MM-dd HH:mm:ss` KST, or a bare date) for a reader:
    /// `2026-11-28 09:30:01 KST` in English, `2026년 11월 28일 09:30` in Korean. Anything else
    /// is shown as sent, and nothing as an em dash.
    pub fn date(self, raw: &str) -> String {
        let raw = raw.trim();
        if raw.is_empty() {
            return "—".to_string();
        }
        let full = chrono::NaiveDateTime::parse_from_str(raw, "%Y-%m-%d %H:%M:%S");
        match (self, full) {
            (Locale::En, Ok(_)) => format!("{raw} KST"),
            (Locale::Ko, Ok(t)) => t.format("%Y년 %m월 %d일 %H:%M").to_string(),
            (Locale::Ko, Err(_)) => chrono::NaiveDate::parse_from_str(raw, "%Y-%m-%d")
                .map(|d| d.format("%Y년 %m월 %d일").to_string())
                .unwrap_or_else(|_| raw.to_string()),
            (Locale::En, Err(_)) => raw.to_string(),
        }
    }
}

/// An integer with thousands separators (`1,204`), as both locales write it.
pub fn group_digits(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if n < 0 {
        out.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A span of time for a reader, to the minute (to the second under a minute): `1h 5m`,
/// `1시간 5분`.
pub fn duration(ms: i64, locale: Locale) -> String {
    let secs = ms.max(0) / 1000;
    let units: [(i64, &str, &str); 4] = [
        (86_400, "d", "일"),
        (3_600, "h", "시간"),
        (60, "m", "분"),
        (1, "s", "초"),
    ];
    let shown = if secs < 60 { secs } else { secs - secs % 60 };
    let mut parts = Vec::new();
    let mut left = shown;
    for (size, en, ko) in units {
        if left >= size {
            parts.push(format!("{}{}", left / size, locale.pick(en, ko)));
            left %= size;
        }
    }
    if parts.is_empty() {
        return locale.pick("0s", "0초").to_string();
    }
    parts.join(" ")
}

/// A ratio as a percentage with one decimal: `12.5%`.
pub fn percent(ratio: f64) -> String {
    format!("{:.1}%", ratio * 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_percentages_read_naturally() {
        assert_eq!(duration(3_900_000, Locale::En), "1h 5m");
        assert_eq!(duration(3_900_000, Locale::Ko), "1시간 5분");
        assert_eq!(duration(45_000, Locale::En), "45s");
        assert_eq!(duration(125_000, Locale::En), "2m");
        assert_eq!(duration(90_000_000, Locale::Ko), "1일 1시간");
        assert_eq!(duration(0, Locale::En), "0s");
        assert_eq!(percent(0.125), "12.5%");
        assert_eq!(percent(1.0), "100.0%");
    }

    #[test]
    fn dates_per_locale() {
        let cases = [
            (Locale::En, "2026-11-28 09:30:01", "2026-11-28 09:30:01 KST"),
            (Locale::Ko, "2026-11-28 09:30:01", "2026년 11월 28일 09:30"),
            (Locale::Ko, "2026-11-28", "2026년 11월 28일"),
            (Locale::En, "2026-11-28", "2026-11-28"),
            (Locale::Ko, "tomorrow", "tomorrow"),
            (Locale::Ko, " ", "—"),
        ];
        for (locale, raw, want) in cases {
            assert_eq!(locale.date(raw), want, "{locale:?} {raw}");
        }
    }

    #[test]
    fn digits_are_grouped() {
        for (n, want) in [
            (0, "0"),
            (999, "999"),
            (1204, "1,204"),
            (-1234567, "-1,234,567"),
        ] {
            assert_eq!(group_digits(n), want);
        }
        assert_eq!(Locale::parse_lang("KO"), Locale::Ko);
        assert_eq!(Locale::parse_lang("fr"), Locale::En);
    }
}
