//! Where one hook can reach the same destination through two grouped routes: it would be
//! counted in two digests there (the one-delivery-per-destination rule covers immediate
//! deliveries only). Pure, static: it reads the rules, not hooks.
//!
//! Invariant: conservative. Globs are not intersected exactly, so a pair no real hook takes
//! may be reported; a pair some hook takes always is.

use super::{Condition, MatchKey, Route};
use crate::bizmessage::HookKind;

const KINDS: [HookKind; 3] = [
    HookKind::Template,
    HookKind::MessageResult,
    HookKind::Unknown,
];

/// Two grouped routes, in file order, that can both take one hook and share destinations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DoubleDigest {
    pub first: usize,
    pub second: usize,
    pub destinations: Vec<String>,
}

/// Every pair of grouped routes one hook can reach with a destination in common.
pub fn double_digests(routes: &[Route]) -> Vec<DoubleDigest> {
    let mut out = Vec::new();
    for (i, a) in routes.iter().enumerate() {
        if a.group.is_none() || !a.continue_matching {
            continue;
        }
        for (j, b) in routes.iter().enumerate().skip(i + 1) {
            // A route in between that stops every hook of `a` shields everything after it.
            if (i + 1..j).any(|k| !routes[k].continue_matching && covers(&routes[k], a)) {
                break;
            }
            if b.group.is_none() || !may_both_match(a, b) {
                continue;
            }
            let shared: Vec<String> = a.to.iter().filter(|d| b.to.contains(d)).cloned().collect();
            if !shared.is_empty() {
                out.push(DoubleDigest {
                    first: i,
                    second: j,
                    destinations: shared,
                });
            }
        }
    }
    out
}

fn condition(r: &Route, key: MatchKey) -> Option<&Condition> {
    r.conditions.iter().find(|c| c.key == key)
}

fn patterns(c: &Condition) -> impl Iterator<Item = &str> {
    c.any_of.iter().map(|m| m.glob().glob())
}

fn is_literal(pattern: &str) -> bool {
    !pattern.contains(META)
}

const META: [char; 7] = ['*', '?', '[', ']', '{', '}', '\\'];

/// Two globs cannot both match a value when their literal beginnings (or endings) differ:
/// `ALIMTALK_*` and `FRIENDTALK_*` never meet; anything else may.
fn ends_may_meet(a: &str, b: &str) -> bool {
    let head = |p: &str| p.find(META).unwrap_or(p.len());
    let tail = |p: &str| p.rfind(META).map_or(0, |i| i + 1);
    let (ha, hb) = (&a[..head(a)], &b[..head(b)]);
    let (ta, tb) = (&a[tail(a)..], &b[tail(b)..]);
    (ha.starts_with(hb) || hb.starts_with(ha)) && (ta.ends_with(tb) || tb.ends_with(ta))
}

fn kinds(r: &Route) -> Vec<HookKind> {
    KINDS.into_iter().filter(|k| r.may_match_kind(*k)).collect()
}

/// Whether some value can satisfy both conditions.
fn may_intersect(a: &Condition, b: &Condition) -> bool {
    if let Some(values) = a.key.closed_values() {
        return values.iter().any(|v| {
            a.any_of.iter().any(|m| m.is_match(v)) && b.any_of.iter().any(|m| m.is_match(v))
        });
    }
    a.any_of.iter().any(|ma| {
        b.any_of.iter().any(|mb| {
            let (pa, pb) = (ma.glob().glob(), mb.glob().glob());
            match (is_literal(pa), is_literal(pb)) {
                (true, true) => pa == pb,
                (true, false) => mb.is_match(pa),
                (false, true) => ma.is_match(pb),
                (false, false) => ends_may_meet(pa, pb),
            }
        })
    })
}

fn may_both_match(a: &Route, b: &Route) -> bool {
    let kinds_b = kinds(b);
    kinds(a).iter().any(|k| kinds_b.contains(k))
        && a.conditions.iter().all(|ca| {
            ca.key == MatchKey::Kind || condition(b, ca.key).is_none_or(|cb| may_intersect(ca, cb))
        })
}

/// Whether `k` surely matches every hook `a` matches.
fn covers(k: &Route, a: &Route) -> bool {
    k.conditions.iter().all(|ck| {
        if ck.key == MatchKey::Kind {
            return kinds(a)
                .iter()
                .all(|kind| ck.any_of.iter().any(|m| m.is_match(kind.as_str())));
        }
        let Some(ca) = condition(a, ck.key) else {
            return false;
        };
        match ck.key.closed_values() {
            Some(values) => values
                .iter()
                .filter(|v| ca.any_of.iter().any(|m| m.is_match(v)))
                .all(|v| ck.any_of.iter().any(|m| m.is_match(v))),
            None => patterns(ca).all(|p| {
                patterns(ck).any(|q| q == "*")
                    || (is_literal(p) && ck.any_of.iter().any(|m| m.is_match(p)))
            }),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::RouteConfig;

    fn routes(toml_text: &str) -> Vec<Route> {
        #[derive(serde::Deserialize)]
        struct File {
            routes: Vec<RouteConfig>,
        }
        let file: File = toml::from_str(toml_text).unwrap();
        file.routes
            .iter()
            .map(|r| Route::compile(r).unwrap())
            .collect()
    }

    const ALIMTALK: &str = r#"
[[routes]]
name = "alimtalk-failures"
to = ["alerts", "teams"]
continue = true
match = { kind = "message_result", message_type = "ALIMTALK_*", outcome = ["failure", "uncertain"] }
group = { by = ["result_code"] }
"#;

    #[test]
    fn the_old_examples_double_digest_is_found() {
        let text = format!(
            "{ALIMTALK}{}",
            r#"
[[routes]]
name = "sender-profile-problems"
to = ["alerts"]
match = { kind = "message_result", result_code = ["1003", "1006"] }

[[routes]]
name = "other-failures"
to = ["alerts"]
match = { kind = "message_result", outcome = "failure" }
group = { by = ["result_code", "message_type"] }
"#
        );
        assert_eq!(
            double_digests(&routes(&text)),
            vec![DoubleDigest {
                first: 0,
                second: 2,
                destinations: vec!["alerts".into()]
            }]
        );
    }

    #[test]
    fn disjoint_or_shielded_or_separate_routes_are_fine() {
        let cases = [
            // No `continue`: the first match wins.
            ALIMTALK.replace("continue = true\n", "")
                + "[[routes]]\nname = \"b\"\nto = \"alerts\"\nmatch = { outcome = \"failure\" }\ngroup = {}\n",
            // Outcomes that cannot both hold.
            ALIMTALK.to_string()
                + "[[routes]]\nname = \"b\"\nto = \"alerts\"\nmatch = { outcome = \"success\" }\ngroup = {}\n",
            // Message types that cannot both hold.
            ALIMTALK.to_string()
                + "[[routes]]\nname = \"b\"\nto = \"alerts\"\nmatch = { message_type = \"FRIENDTALK_*\" }\ngroup = {}\n",
            // Kinds that cannot both hold.
            ALIMTALK.to_string()
                + "[[routes]]\nname = \"b\"\nto = \"alerts\"\nmatch = { kind = \"template\" }\ngroup = {}\n",
            // Another destination.
            ALIMTALK.to_string()
                + "[[routes]]\nname = \"b\"\nto = \"ops\"\nmatch = { outcome = \"failure\" }\ngroup = {}\n",
            // Not grouped: one delivery per destination holds for immediate messages.
            ALIMTALK.to_string()
                + "[[routes]]\nname = \"b\"\nto = \"alerts\"\nmatch = { outcome = \"failure\" }\n",
            // A catch-all for message results in between stops every hook of the first.
            ALIMTALK.to_string()
                + "[[routes]]\nname = \"stop\"\nto = \"ops\"\nmatch = { kind = \"message_result\" }\n\
                   [[routes]]\nname = \"b\"\nto = \"alerts\"\nmatch = { outcome = \"failure\" }\ngroup = {}\n",
        ];
        for text in cases {
            assert_eq!(double_digests(&routes(&text)), vec![], "{text}");
        }
    }

    #[test]
    fn glob_ends_tell_disjoint_patterns() {
        assert!(!ends_may_meet("ALIMTALK_*", "FRIENDTALK_*"));
        assert!(ends_may_meet("ALIMTALK_*", "ALIM*"));
        assert!(!ends_may_meet("*_MASS", "*_NORMAL"));
        assert!(ends_may_meet("A*_MASS", "*S"));
        assert!(ends_may_meet("*", "x?y"));
    }

    #[test]
    fn a_partial_route_in_between_does_not_shield() {
        let text = ALIMTALK.to_string()
            + "[[routes]]\nname = \"some\"\nto = \"ops\"\nmatch = { result_code = \"3019\" }\n\
               [[routes]]\nname = \"b\"\nto = \"alerts\"\nmatch = { result_code = [\"3019\", \"1003\"] }\ngroup = {}\n";
        assert_eq!(double_digests(&routes(&text)).len(), 1);
    }
}
