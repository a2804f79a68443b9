//! Whole-config checks that no single struct can make alone: routes against destinations and
//! templates, URLs, names, numbers in range.

use std::collections::BTreeSet;

use super::{Config, ConfigError, EXAMPLE_SIGNATURE};
use crate::destination::Checks;
use crate::render::Renderer;
use crate::route::Route;

/// Compiles the routes and checks everything; returns the routes and the warnings.
pub(super) fn validate(
    file: &str,
    config: &Config,
    renderer: &Renderer,
) -> Result<(Vec<Route>, Vec<String>), Vec<ConfigError>> {
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let mut err = |key: String, reason: String| {
        errors.push(ConfigError {
            file: file.to_string(),
            key,
            reason,
        })
    };

    if !config.server.path.starts_with('/') {
        err("server.path".into(), "must start with /".into());
    }
    if config.server.max_body_bytes < 1024 {
        err(
            "server.max_body_bytes".into(),
            "must be at least 1024".into(),
        );
    }
    if config.admin.listen == Some(config.server.listen) && config.server.listen.port() != 0 {
        err(
            "admin.listen".into(),
            "must differ from server.listen".into(),
        );
    }
    if let Some(url) = &config.store.url
        && let Err(reason) = crate::store::postgres::parse_url(url.expose())
    {
        // The reason never quotes the URL: it may hold the password.
        err("store.url".into(), reason);
    }
    if config.store.lease.is_zero() || config.store.commit_timeout.is_zero() {
        err(
            "store".into(),
            "lease and commit_timeout must be longer than 0s".into(),
        );
    }
    for (key, reason) in super::enrich::check(&config.enrich) {
        err(key, reason);
    }
    if config.store.dedup_window.is_zero() {
        err("store.dedup_window".into(), "must be longer than 0s".into());
    }
    if config.delivery.max_attempts == 0 {
        err("delivery.max_attempts".into(), "must be at least 1".into());
    }
    let backoff = config.delivery.backoff;
    if backoff.initial.is_zero() || backoff.initial > backoff.max {
        err(
            "delivery.backoff".into(),
            "initial must be above 0s and at most max".into(),
        );
    }
    for (key, list) in [
        ("ingest.signatures", &config.ingest.signatures),
        ("ingest.app_keys", &config.ingest.app_keys),
    ] {
        if let Some(i) = list.iter().position(|s| s.trim().is_empty()) {
            // Fail closed: an unset ${VAR} that expands to nothing must not turn checks off.
            err(
                format!("{key}[{i}]"),
                "is empty (to accept any, leave the list empty)".into(),
            );
        }
    }
    if config
        .ingest
        .signatures
        .iter()
        .any(|s| s == EXAMPLE_SIGNATURE)
    {
        warnings.push(format!(
            "ingest.signatures: INSECURE: `{EXAMPLE_SIGNATURE}` is accepted, the example config's public default: anyone who read the README can post hooks here (set BIZRELAY_SIGNATURE to the signature registered in NHN's console)"
        ));
    }
    if config.ingest.signatures.is_empty() {
        warnings.push(
            "ingest.signatures is empty: unsigned requests are accepted (set it to the signature registered in NHN's console)"
                .to_string(),
        );
    }

    for (name, dest) in &config.destinations {
        let key = |k: &str| format!("destinations.{name}.{k}");
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            err(
                format!("destinations.{name}"),
                "names may use letters, digits, - _ . only".into(),
            );
        }
        // The type's own checks: url, settings (never quoting a value: it may be the secret).
        let checks = Checks::of(dest);
        for (k, reason) in checks.errors {
            err(key(&k), reason);
        }
        for (k, reason) in checks.warnings {
            warnings.push(format!("{}: {reason}", key(&k)));
        }
        if let Some(r) = dest.rate_per_second
            && !(r.is_finite() && r >= 0.0)
        {
            err(
                key("rate_per_second"),
                "must be a number ≥ 0 (0 = unlimited)".into(),
            );
        }
        if dest.burst == Some(0) {
            err(key("burst"), "must be at least 1".into());
        }
        if dest.timeout.is_some_and(|t| t.is_zero()) {
            err(key("timeout"), "must be longer than 0s".into());
        }
    }

    let mut routes = Vec::new();
    let mut names = BTreeSet::new();
    let mut used = BTreeSet::new();
    for (i, rc) in config.routes.iter().enumerate() {
        if !names.insert(rc.name.clone()) {
            err(
                format!("routes[{i}].name"),
                format!("`{}` is used by an earlier route", rc.name),
            );
        }
        let route = match Route::compile(rc) {
            Ok(r) => r,
            Err(route_errors) => {
                for e in route_errors {
                    err(format!("routes[{i}] ({}).{}", e.route, e.key), e.reason);
                }
                continue;
            }
        };
        for dest_name in &route.to {
            used.insert(dest_name.clone());
            let Some(dest) = config.destinations.get(dest_name) else {
                err(
                    format!("routes[{i}] ({}).to", route.name),
                    format!("unknown destination `{dest_name}`"),
                );
                continue;
            };
            if route.group.is_none()
                && route.may_match_kind(crate::bizmessage::HookKind::MessageResult)
                && dest.kind.drops_excess_silently()
            {
                warnings.push(format!(
                    "routes[{i}] ({}).to: `{dest_name}` is a {} destination, which drops messages beyond its pace without telling: send message results there as digests ([routes.group])",
                    route.name,
                    dest.kind.as_str()
                ));
            }
            for template in route.templates_used() {
                if !renderer.has(dest.kind, config.locale_of(dest), template) {
                    err(
                        format!("routes[{i}] ({}).template", route.name),
                        format!(
                            "no {} template named `{template}` (for destination `{dest_name}`)",
                            dest.kind.as_str()
                        ),
                    );
                }
            }
        }
        routes.push(route);
    }
    for name in config.destinations.keys() {
        if !used.contains(name) {
            warnings.push(format!("destinations.{name}: no route sends anything here"));
        }
    }
    for d in crate::route::double_digests(&routes) {
        let (a, b) = (&routes[d.first], &routes[d.second]);
        warnings.push(format!(
            "routes[{}] ({}) and routes[{}] ({}): one hook can take both (the first has `continue = true`), so {} counts it in two digests; narrow one route's match or drop `continue`",
            d.first, a.name, d.second, b.name, d.destinations.join(", ")
        ));
    }
    for (i, r) in routes.iter().enumerate() {
        if r.rate.is_none() {
            continue;
        }
        use crate::route::MatchKey;
        if let Some(key) = [MatchKey::Outcome, MatchKey::ResultCode]
            .into_iter()
            .find(|k| r.matches_on(*k))
        {
            warnings.push(format!(
                "routes[{i}] ({}): its rate rule counts only the results the route matches, and it matches on `{}`, so the failure ratio is not of all results (match on kind, message_type or sender_key instead)",
                r.name,
                key.name()
            ));
        }
        if !r.continue_matching && i + 1 < routes.len() {
            warnings.push(format!(
                "routes[{i}] ({}): a rate route without `continue = true` keeps the hooks it takes from the routes after it (set `continue = true` so failures are also relayed or digested)",
                r.name
            ));
        }
    }
    if config.routes.is_empty() {
        warnings.push("no routes: every hook is stored and then dropped as unrouted".into());
    }

    if errors.is_empty() {
        Ok((routes, warnings))
    } else {
        Err(errors)
    }
}
