//! The delivery result-code table: all 105 codes NHN documents, built into the binary.
//!
//! Invariant: every code, known or not, has an [`Outcome`]. `1000` is the only success, `3005`
//! the only uncertain one; everything else, including codes the table does not list, is a
//! failure (shown with its raw code and no meaning).

use std::collections::HashMap;
use std::sync::LazyLock;

use serde::Serialize;

/// The vendor's table, copied verbatim (code, outcome, final, English, Korean).
const TABLE: &str = include_str!("result_codes.tsv");

/// What a result code means for the message it belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Success,
    Uncertain,
    Failure,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Uncertain => "uncertain",
            Outcome::Failure => "failure",
        }
    }
}

/// One row of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultCode {
    pub code: &'static str,
    pub outcome: Outcome,
    /// `false` only for `4161` ("still processing"), which may change later.
    pub is_final: bool,
    pub meaning_en: &'static str,
    pub meaning_ko: &'static str,
}

static CODES: LazyLock<HashMap<&'static str, ResultCode>> = LazyLock::new(|| {
    TABLE
        .lines()
        .skip(1)
        .filter(|line| !line.trim().is_empty())
        .filter_map(parse_row)
        .map(|row| (row.code, row))
        .collect()
});

fn parse_row(line: &'static str) -> Option<ResultCode> {
    let mut cols = line.split('\t');
    let code = cols.next()?.trim();
    let outcome = match cols.next()?.trim() {
        "success" => Outcome::Success,
        "uncertain" => Outcome::Uncertain,
        _ => Outcome::Failure,
    };
    let is_final = cols.next()?.trim() != "no";
    let meaning_en = cols.next()?.trim();
    let meaning_ko = cols.next()?.trim();
    Some(ResultCode {
        code,
        outcome,
        is_final,
        meaning_en,
        meaning_ko,
    })
}

/// Looks a code up in the table; `None` for codes NHN does not document.
pub fn lookup(code: &str) -> Option<&'static ResultCode> {
    CODES.get(code.trim())
}

/// The outcome of a code; unknown codes are failures.
pub fn outcome_of(code: &str) -> Outcome {
    lookup(code).map_or(Outcome::Failure, |c| c.outcome)
}

/// Every code in the table, sorted, for documentation and tests.
pub fn all() -> Vec<&'static ResultCode> {
    let mut all: Vec<_> = CODES.values().collect();
    all.sort_by_key(|c| c.code);
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_has_all_105_codes() {
        assert_eq!(all().len(), 105);
        assert_eq!(TABLE.lines().skip(1).filter(|l| !l.is_empty()).count(), 105);
    }

    #[test]
    fn outcomes_follow_the_vendor_rules() {
        assert_eq!(outcome_of("1000"), Outcome::Success);
        assert_eq!(outcome_of("3005"), Outcome::Uncertain);
        assert_eq!(outcome_of("3019"), Outcome::Failure);
        assert_eq!(outcome_of("7777"), Outcome::Failure, "unknown code");
        assert_eq!(outcome_of(""), Outcome::Failure);
        let successes: Vec<_> = all()
            .into_iter()
            .filter(|c| c.outcome != Outcome::Failure)
            .map(|c| c.code)
            .collect();
        assert_eq!(successes, vec!["1000", "3005"]);
    }

    #[test]
    fn meanings_are_present_in_both_languages() {
        for code in all() {
            assert!(!code.meaning_en.is_empty(), "{}", code.code);
            assert!(!code.meaning_ko.is_empty(), "{}", code.code);
            assert_eq!(code.code.len(), 4, "{}", code.code);
        }
        let c = lookup("3019").expect("3019 is documented");
        assert!(
            c.meaning_en.to_lowercase().contains("kakaotalk"),
            "{}",
            c.meaning_en
        );
        assert!(lookup(" 3016 ").is_some(), "lookup trims whitespace");
    }

    #[test]
    fn only_4161_may_not_be_final() {
        let not_final: Vec<_> = all()
            .into_iter()
            .filter(|c| !c.is_final)
            .map(|c| c.code)
            .collect();
        assert_eq!(not_final, vec!["4161"]);
    }

    #[test]
    fn query_filters_are_not_codes() {
        assert!(lookup("MRC01").is_none());
        assert!(lookup("MRC02").is_none());
    }
}
