//! "Did you mean …?": the known name closest to a misspelt one, for config keys and template
//! variables. Pure.

/// The candidate closest to `word`, when it is close enough to be a likely typo (at most one
/// edit per three characters, at least one; a swap of two neighbours counts as one edit).
/// Ties go to the earlier candidate, so the answer does not depend on hashing.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let word_lower = word.to_lowercase();
    let limit = (word.chars().count() / 3).max(1);
    let mut best: Option<(usize, &'a str)> = None;
    for candidate in candidates {
        if candidate == word {
            continue;
        }
        let distance = strsim::damerau_levenshtein(&word_lower, &candidate.to_lowercase());
        if distance <= limit && best.is_none_or(|(d, _)| distance < d) {
            best = Some((distance, candidate));
        }
    }
    best.map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::closest;

    #[test]
    fn finds_typos_and_nothing_far_away() {
        let keys = ["max_attempts", "max_age", "backoff", "timeout"];
        assert_eq!(closest("max_attempt", keys), Some("max_attempts"));
        assert_eq!(closest("timeuot", keys), Some("timeout"));
        assert_eq!(closest("MAX_AGE", keys), Some("max_age"));
        assert_eq!(closest("retries", keys), None);
        assert_eq!(closest("x", keys), None);
        assert_eq!(
            closest("templateCod", ["templateCode", "kakaoTemplateCode"]),
            Some("templateCode")
        );
        assert_eq!(closest("listne", ["listen", "path"]), Some("listen"));
        assert_eq!(
            closest("path", ["path"]),
            None,
            "the word itself is no suggestion"
        );
    }
}
