use super::*;
use crate::bizmessage::{Comment, ResultHook, TemplateHook};

fn rules(toml_text: &str) -> Vec<Route> {
    #[derive(Deserialize)]
    struct File {
        routes: Vec<RouteConfig>,
    }
    let file: File = toml_from_str(toml_text);
    file.routes
        .iter()
        .map(|r| Route::compile(r).expect("valid route"))
        .collect()
}

fn toml_from_str<T: serde::de::DeserializeOwned>(text: &str) -> T {
    config::Config::builder()
        .add_source(config::File::from_str(text, config::FileFormat::Toml))
        .build()
        .unwrap()
        .try_deserialize()
        .unwrap()
}

fn template(code: &str, status: &str, comment_status: Option<&str>) -> Hook {
    Hook {
        hook_id: Some(format!("t-{code}").into()),
        body: HookBody::Template(TemplateHook {
            sender_key: Some("SK1".into()),
            template_code: code.into(),
            status: status.into(),
            comments: comment_status
                .map(|s| {
                    vec![Comment {
                        status: Some(s.into()),
                        ..Comment::default()
                    }]
                })
                .unwrap_or_default(),
            ..TemplateHook::default()
        }),
        mismatches: Vec::new(),
    }
}

fn result(kind: &str, code: Option<&str>, sender_group: Option<&str>) -> Hook {
    Hook {
        hook_id: Some("r".into()),
        body: HookBody::MessageResult(ResultHook {
            kakao_message_type: Some(kind.into()),
            result_code: code.map(Into::into),
            sender_grouping_key: sender_group.map(Into::into),
            ..ResultHook::default()
        }),
        mismatches: Vec::new(),
    }
}

fn unknown(fields: serde_json::Value) -> Hook {
    let serde_json::Value::Object(map) = fields else {
        panic!()
    };
    Hook {
        hook_id: None,
        body: HookBody::Unknown(map),
        mismatches: Vec::new(),
    }
}

fn envelope(event: &str, app_key: &str) -> Envelope {
    Envelope {
        event: Some(event.into()),
        app_key: Some(app_key.into()),
        ..Envelope::default()
    }
}

const RULES: &str = r#"
[[routes]]
name = "decisions"
to = ["ops"]
[routes.match]
kind = "template"
status = ["TSC03", "TSC04"]

[[routes]]
name = "inquiries"
to = "ops"
[routes.match]
comment_status = "INQ"

[[routes]]
name = "alimtalk-failures"
to = ["ops", "teams"]
continue = true
[routes.match]
kind = "message_result"
message_type = "ALIMTALK_*"
outcome = ["failure", "uncertain"]

[[routes]]
name = "order-service"
to = ["orders"]
[routes.match]
sender_grouping_key = "order-?ervice"

[[routes]]
name = "app-x-all-failures"
to = ["ops"]
[routes.match]
app_key = "Xk2*"
outcome = "failure"

[[routes]]
name = "unknown"
to = ["ops"]
[routes.match]
kind = "unknown"

[[routes]]
name = "catch-all"
to = ["log"]
"#;

#[test]
fn routing_table() {
    let rules = rules(RULES);
    let env = envelope("MESSAGE_RESULT_UPDATE", "Xk2abcDEF9tq");
    let other_app = envelope("MESSAGE_RESULT_UPDATE", "OTHER");
    let cases: Vec<(&str, &Envelope, Hook, Vec<&str>)> = vec![
        (
            "approved",
            &env,
            template("T1", "TSC03", None),
            vec!["decisions"],
        ),
        (
            "rejected",
            &env,
            template("T1", "TSC04", Some("REJ")),
            vec!["decisions"],
        ),
        (
            "requested falls through",
            &env,
            template("T1", "TSC01", None),
            vec!["catch-all"],
        ),
        (
            "inquiry",
            &env,
            template("T1", "TSC02", Some("INQ")),
            vec!["inquiries"],
        ),
        (
            "alimtalk failure continues to the next match",
            &env,
            result("ALIMTALK_NORMAL", Some("3019"), Some("order-service")),
            vec!["alimtalk-failures", "order-service"],
        ),
        (
            "uncertain is not failure for the app-key route",
            &other_app,
            result("ALIMTALK_MASS", Some("3005"), None),
            vec!["alimtalk-failures", "catch-all"],
        ),
        (
            "success is not routed to failures",
            &env,
            result("ALIMTALK_NORMAL", Some("1000"), None),
            vec!["catch-all"],
        ),
        (
            "friendtalk failure by app key",
            &env,
            result("FRIENDTALK_NORMAL", Some("3016"), None),
            vec!["app-x-all-failures"],
        ),
        (
            "null result code is a failure",
            &env,
            result("FRIENDTALK_NORMAL", None, None),
            vec!["app-x-all-failures"],
        ),
        (
            "other app key, no grouping key",
            &other_app,
            result("FRIENDTALK_NORMAL", Some("3016"), None),
            vec!["catch-all"],
        ),
        (
            "unknown",
            &env,
            unknown(serde_json::json!({"x": 1})),
            vec!["unknown"],
        ),
    ];
    for (name, env, hook, want) in cases {
        let got: Vec<&str> = route(&rules, env, &hook)
            .iter()
            .map(|r| r.name.as_str())
            .collect();
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn a_condition_on_a_missing_field_does_not_match() {
    let rules = rules(
        r#"
[[routes]]
name = "by-status"
to = "x"
[routes.match]
status = "*"
[[routes]]
name = "by-code"
to = "x"
[routes.match]
result_code = "*"
[[routes]]
name = "by-event"
to = "x"
[routes.match]
event = "*"
"#,
    );
    // A result hook has no status; a null result code is absent; no event in the envelope.
    let hook = result("ALIMTALK_NORMAL", None, None);
    assert!(route(&rules, &Envelope::default(), &hook).is_empty());
    let hook = result("ALIMTALK_NORMAL", Some("3019"), None);
    let names: Vec<_> = route(&rules, &Envelope::default(), &hook)
        .iter()
        .map(|r| r.name.clone())
        .collect();
    assert_eq!(names, vec!["by-code"]);
}

#[test]
fn empty_match_matches_everything() {
    let rules = rules("[[routes]]\nname = \"all\"\nto = \"x\"\n");
    for hook in [
        template("T", "TSC01", None),
        result("X", None, None),
        unknown(serde_json::json!({})),
    ] {
        assert_eq!(route(&rules, &Envelope::default(), &hook).len(), 1);
    }
}

#[test]
fn unknown_hooks_match_on_their_vendor_fields() {
    let rules = rules(
        "[[routes]]\nname = \"sk\"\nto = \"x\"\n[routes.match]\nsender_key = \"4f1c*\"\nresult_code = \"30*\"\n",
    );
    let hook = unknown(serde_json::json!({"senderKey": "4f1c0a", "resultCode": 3019}));
    assert_eq!(route(&rules, &Envelope::default(), &hook).len(), 1);
    let hook = unknown(serde_json::json!({"senderKey": {"nested": 1}, "resultCode": 3019}));
    assert!(route(&rules, &Envelope::default(), &hook).is_empty());
}

#[test]
fn compile_errors_name_route_and_key() {
    let bad = |text: &str| -> Vec<String> {
        #[derive(Deserialize)]
        struct File {
            routes: Vec<RouteConfig>,
        }
        let file: File = toml_from_str(text);
        Route::compile(&file.routes[0])
            .unwrap_err()
            .into_iter()
            .map(|e| e.to_string())
            .collect()
    };
    let errs = bad("[[routes]]\nname = \"r1\"\nto = \"x\"\n[routes.match]\ncolour = \"red\"\n");
    assert!(
        errs[0].starts_with("route `r1`: match.colour: unknown match key"),
        "{errs:?}"
    );

    let errs = bad("[[routes]]\nname = \"r2\"\nto = \"x\"\n[routes.match]\nstatus = \"TSC[0\"\n");
    assert!(
        errs[0].starts_with("route `r2`: match.status: bad glob `TSC[0`"),
        "{errs:?}"
    );

    let errs = bad("[[routes]]\nname = \"r3\"\nto = \"x\"\n[routes.match]\nkind = \"templates\"\n");
    assert!(
        errs[0].contains("match.kind: `templates` matches none of"),
        "{errs:?}"
    );

    let errs = bad("[[routes]]\nname = \"r4\"\nto = []\n");
    assert_eq!(errs, vec!["route `r4`: to: names no destination"]);

    let errs = bad(
        "[[routes]]\nname = \"r5\"\nto = \"x\"\n[routes.group]\nby = [\"result_code\", \"colour\"]\nmax_items = 0\n",
    );
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(
        errs[0].contains("group.by: unknown key `colour`"),
        "{errs:?}"
    );
}

#[test]
fn template_defaults_by_kind_and_grouping() {
    let rules = rules(
        r#"
[[routes]]
name = "plain"
to = "x"
[[routes]]
name = "named"
to = "x"
template = "custom"
[[routes]]
name = "grouped"
to = "x"
[routes.group]
by = ["result_code"]
wait = "10s"
"#,
    );
    assert_eq!(rules[0].template_for(HookKind::Template), "template_status");
    assert_eq!(
        rules[0].template_for(HookKind::MessageResult),
        "message_result"
    );
    assert_eq!(rules[0].template_for(HookKind::Unknown), "unknown_event");
    assert_eq!(rules[1].template_for(HookKind::Unknown), "custom");
    assert_eq!(
        rules[2].template_for(HookKind::MessageResult),
        "message_digest"
    );
    let g = rules[2].group.as_ref().unwrap();
    assert_eq!(g.by, vec![MatchKey::ResultCode]);
    assert_eq!(g.wait, Duration::from_secs(10));
    assert_eq!(g.interval, Duration::from_secs(300));
    assert_eq!(g.max_items, 10);
}

#[test]
fn match_key_names_round_trip() {
    for k in MatchKey::ALL {
        assert_eq!(MatchKey::parse(k.name()), Some(k));
    }
}

#[test]
fn kinds_a_route_can_match() {
    let rules = rules(
        r#"
[[routes]]
name = "t"
to = "x"
[routes.match]
status = "TSC04"
[[routes]]
name = "r"
to = "x"
[routes.match]
outcome = "failure"
[[routes]]
name = "u"
to = "x"
[routes.match]
kind = ["unknown", "template"]
[[routes]]
name = "all"
to = "x"
[routes.match]
event = "*"
"#,
    );
    let kinds = |r: &Route| -> Vec<HookKind> {
        [
            HookKind::Template,
            HookKind::MessageResult,
            HookKind::Unknown,
        ]
        .into_iter()
        .filter(|k| r.may_match_kind(*k))
        .collect()
    };
    assert_eq!(kinds(&rules[0]), vec![HookKind::Template]);
    assert_eq!(kinds(&rules[1]), vec![HookKind::MessageResult]);
    assert_eq!(
        kinds(&rules[2]),
        vec![HookKind::Template, HookKind::Unknown]
    );
    assert_eq!(kinds(&rules[3]).len(), 3);
}

#[test]
fn enriched_fields_are_match_keys_of_message_results_and_missing_until_enriched() {
    let r = rules(
        r#"
[[routes]]
name = "orders"
to = "d"
match = { template_code = "ORDER_*", resend_status = "RSC04" }
"#,
    )
    .remove(0);
    assert!(r.may_match_kind(HookKind::MessageResult));
    let mut hook = result("ALIMTALK_NORMAL", Some("3019"), None);
    let env = Envelope::default();
    assert!(
        !r.matches(&env, &hook),
        "not enriched: the keys are missing, no match"
    );
    if let HookBody::MessageResult(res) = &mut hook.body {
        res.enrichment = Some(Box::new(crate::bizmessage::Enrichment {
            template_code: Some("ORDER_PAID".into()),
            resend_status: Some("RSC04".into()),
            ..Default::default()
        }));
    }
    assert!(r.matches(&env, &hook));
    if let HookBody::MessageResult(res) = &mut hook.body {
        res.enrichment.as_mut().unwrap().template_code = Some("PROMO".into());
    }
    assert!(!r.matches(&env, &hook));
}

#[test]
fn rate_rules_are_checked_in_operator_words() {
    let bad = |rate: &str, extra: &str| -> Vec<String> {
        #[derive(Deserialize)]
        struct File {
            routes: Vec<RouteConfig>,
        }
        let text = format!("[[routes]]\nname = \"rr\"\nto = \"x\"\n{extra}[routes.rate]\n{rate}");
        let file: File = toml_from_str(&text);
        Route::compile(&file.routes[0])
            .err()
            .unwrap_or_default()
            .into_iter()
            .map(|e| e.to_string())
            .collect()
    };
    let results = "[routes.match]\nkind = \"message_result\"\n";
    assert!(
        bad("fire_above = 0.1\nwindow = \"2s\"\n", results).is_empty(),
        "seconds are fine"
    );
    let errs = bad(
        "fire_above = 1.5\nresolve_below = 0.2\nwindow = \"0s\"\nmin_messages = 0\nby = [\"colour\"]\n",
        results,
    );
    let want = [
        "route `rr`: rate.by: unknown key `colour`",
        "route `rr`: rate.window: must be at least 1s",
        "route `rr`: rate.min_messages: must be at least 1",
        "route `rr`: rate.fire_above: must be a failure ratio from 0 up to (not including) 1",
    ];
    for (got, want) in errs.iter().zip(want) {
        assert!(got.starts_with(want), "{got} / {want}");
    }
    let errs = bad("fire_above = 0.1\nresolve_below = 0.2\n", results);
    assert!(
        errs[0].contains("rate.resolve_below: 0.2 is above fire_above (0.1)"),
        "{errs:?}"
    );
    // Without a group it sends nothing per hook: other kinds would vanish into it.
    let errs = bad("fire_above = 0.1\n", "");
    assert!(
        errs[0].contains("route `rr`: rate: a rate rule counts message results only"),
        "{errs:?}"
    );
    let errs = bad(
        "fire_above = 0.1\n",
        &format!("template = \"mine\"\n{results}"),
    );
    assert!(
        errs[0].contains("template: a route with only a rate rule sends no message per hook"),
        "{errs:?}"
    );
    // Durations that would overflow the clock are refused.
    let errs = bad(
        "fire_above = 0.1\nwindow = \"8d\"\nrepeat_interval = \"300000000y\"\n",
        results,
    );
    assert!(
        errs[0].contains("rate.window: must be at most 7d"),
        "{errs:?}"
    );
    assert!(
        errs[1].contains("rate.repeat_interval: must be at most 30d"),
        "{errs:?}"
    );
    let errs = bad(
        "fire_above = 0.1\n",
        "[routes.group]\nresolve_after = \"31d\"\n",
    );
    assert!(
        errs[0].contains("group.resolve_after: must be at most 30d"),
        "{errs:?}"
    );
    // Defaults: 5m windows, 100 results, resolve at half the fire ratio, repeat every 4h.
    let r = &rules(
        "[[routes]]\nname = \"r\"\nto = \"x\"\n[routes.match]\nkind = \"message_result\"\n[routes.rate]\nfire_above = 0.1\n",
    )[0];
    let spec = r.rate.as_ref().unwrap();
    assert_eq!(
        (
            spec.window.as_secs(),
            spec.min_messages,
            spec.resolve_below,
            spec.repeat_interval.as_secs()
        ),
        (300, 100, 0.05, 14_400)
    );
    assert_eq!(r.templates_used(), vec!["rate_firing", "rate_resolved"]);
}
