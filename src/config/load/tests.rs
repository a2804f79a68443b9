use super::*;
use crate::config::SyncMode;
use std::time::Duration;

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn file(text: &str) -> ConfigSource {
    ConfigSource::File {
        path: PathBuf::from("/nonexistent/bizrelay.toml"),
        text: text.to_string(),
    }
}

fn errors(text: &str, vars: &[(&str, &str)]) -> Vec<String> {
    load(&file(text), &env(vars))
        .unwrap_err()
        .into_iter()
        .map(|e| e.to_string())
        .collect()
}

const GOOD: &str = r#"
[server]
listen = "127.0.0.1:9999"

[ingest]
signatures = ["${SIG}", "old-one"]

[destinations.ops-slack]
type = "slack"
url = "${SLACK_URL}"

[destinations.teams]
type = "teams"
url = "https://example.invalid/workflows/x"
rate_per_second = 0.5
burst = 1

[[routes]]
name = "decisions"
to = ["ops-slack", "teams"]
[routes.match]
kind = "template"
"#;

#[test]
fn builtin_default_loads() {
    let loaded = load(&ConfigSource::Builtin, &HashMap::new()).unwrap();
    assert_eq!(loaded.config.server.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(loaded.config.server.path, "/hooks/bizmessage");
    assert_eq!(loaded.config.server.max_body_bytes, 1024 * 1024);
    assert!(loaded.config.ingest.signatures.is_empty());
    assert_eq!(loaded.config.store.sync, SyncMode::Full);
    assert_eq!(
        loaded.config.store.dedup_window,
        Duration::from_secs(7 * 86400)
    );
    assert_eq!(loaded.config.delivery.max_attempts, 20);
    assert!(loaded.config.privacy.mask_recipient);
    assert_eq!(loaded.routes.len(), 3);
    assert!(
        loaded.routes[1].group.is_some(),
        "failures are grouped by default"
    );
    assert_eq!(loaded.origin, "built-in default");
    assert!(loaded.warnings.iter().any(|w| w.contains("unsigned")));
}

#[test]
fn env_overrides_apply_to_the_builtin_default_too() {
    let vars = env(&[
        ("BIZRELAY__SERVER__LISTEN", "0.0.0.0:9000"),
        ("BIZRELAY__SERVER__MAX_BODY_BYTES", "2048"),
        ("BIZRELAY__INGEST__SIGNATURES", "12345,abc"),
        ("BIZRELAY__STORE__SYNC", "normal"),
        ("BIZRELAY__DELIVERY__MAX_AGE", "2h"),
        ("BIZRELAY_UNRELATED", "x"),
    ]);
    let loaded = load(&ConfigSource::Builtin, &vars).unwrap();
    assert_eq!(loaded.config.server.listen.to_string(), "0.0.0.0:9000");
    assert_eq!(loaded.config.server.max_body_bytes, 2048);
    assert_eq!(loaded.config.ingest.signatures, vec!["12345", "abc"]);
    assert_eq!(loaded.config.store.sync, SyncMode::Normal);
    assert_eq!(loaded.config.delivery.max_age, Duration::from_secs(7200));
}

#[test]
fn secrets_from_the_environment_are_taken_verbatim() {
    let vars = env(&[
        ("BIZRELAY__INGEST__SIGNATURES", "00123,007"),
        ("BIZRELAY__ADMIN__TOKEN", "0123"),
        ("BIZRELAY__DESTINATIONS__CONSOLE__URL", "0042"),
    ]);
    let loaded = load(&ConfigSource::Builtin, &vars).unwrap();
    assert_eq!(loaded.config.ingest.signatures, vec!["00123", "007"]);
    assert_eq!(loaded.config.admin.token.as_deref(), Some("0123"));
    assert_eq!(
        loaded.config.destinations["console"]
            .url
            .as_ref()
            .map(|u| u.expose()),
        Some("0042")
    );
}

#[test]
fn an_empty_signature_is_an_error_not_an_open_door() {
    let text = "[ingest]\nsignatures = [\"${SIG}\"]\n";
    let errs = errors(text, &[("SIG", "")]);
    assert_eq!(
        errs,
        vec![
            "/nonexistent/bizrelay.toml: ingest.signatures[0]: is empty (to accept any, leave the list empty)"
        ]
    );
    let errs = errors("", &[("BIZRELAY__INGEST__SIGNATURES", "")]);
    assert_eq!(errs.len(), 1, "{errs:?}");
    // An empty admin token disables reload over HTTP instead of accepting an empty bearer.
    let loaded = load(&file("[admin]\ntoken = \"${T}\"\n"), &env(&[("T", "")])).unwrap();
    assert_eq!(loaded.config.admin.token, None);
}

#[test]
fn variables_are_substituted_and_paths_resolved() {
    let loaded = load(
        &file(GOOD),
        &env(&[
            ("SIG", "s3cret"),
            ("SLACK_URL", "https://hooks.slack.com/services/T/B/X"),
        ]),
    )
    .unwrap();
    let c = &loaded.config;
    assert_eq!(c.ingest.signatures, vec!["s3cret", "old-one"]);
    assert_eq!(
        c.destinations["ops-slack"].url.as_ref().map(|u| u.expose()),
        Some("https://hooks.slack.com/services/T/B/X")
    );
    assert_eq!(c.destinations["ops-slack"].rate(), Some(1.0));
    assert_eq!(c.destinations["teams"].rate(), Some(0.5));
    assert_eq!(c.destinations["teams"].burst(), 1);
    assert_eq!(c.templates.dir, PathBuf::from("/nonexistent/templates"));
    assert_eq!(c.store.path, PathBuf::from("/nonexistent/data/bizrelay.db"));
    assert!(loaded.warnings.iter().any(|w| w.contains("templates.dir")));
}

#[test]
fn unset_variable_names_the_key_and_variable() {
    let errs = errors(GOOD, &[("SIG", "x")]);
    assert_eq!(
        errs,
        vec![
            "/nonexistent/bizrelay.toml: destinations.ops-slack.url: environment variable SLACK_URL is not set (or write ${SLACK_URL:-default})"
        ]
    );
}

#[test]
fn errors_name_file_key_and_reason() {
    let cases: Vec<(&str, &str)> = vec![
        (
            "[server]\nlisten = \"nope\"\n",
            "server.listen: expected an address like \"127.0.0.1:8080\", got \"nope\"",
        ),
        (
            "[server]\nlistne = \"127.0.0.1:1\"\n",
            "server.listne: unknown setting (did you mean listen?)",
        ),
        (
            "[store]\nsync = \"sometimes\"\n",
            "store.sync: expected one of \"full\", \"normal\", got \"sometimes\"",
        ),
        (
            "[store]\ndedup_window = \"a week\"\n",
            "store.dedup_window: expected a duration like \"30s\", got \"a week\"",
        ),
        (
            "[server]\npath = \"hooks\"\n",
            "server.path: must start with /",
        ),
        (
            "[destinations.x]\ntype = \"slack\"\n",
            "destinations.x.url: a slack destination needs a url",
        ),
        (
            "[destinations.x]\ntype = \"pager\"\n",
            "destinations.x.type: expected one of \"slack\", \"teams\", \"console\", \"dooray\", \"jandi\", \"google_chat\", \"discord\", \"mattermost\", \"webhook\", \"slack_bot\", got \"pager\"",
        ),
        (
            "[[routes]]\nname = \"r\"\nto = [\"ghost\"]\n",
            "routes[0] (r).to: unknown destination `ghost`",
        ),
        (
            "[destinations.c]\ntype = \"console\"\n[[routes]]\nname = \"r\"\nto = \"c\"\n[routes.match]\nshape = \"x\"\n",
            "routes[0] (r).match.shape: unknown match key",
        ),
        (
            "[destinations.c]\ntype = \"console\"\n[[routes]]\nname = \"r\"\nto = \"c\"\n[routes.match]\nstatus = \"[TSC\"\n",
            "routes[0] (r).match.status: bad glob",
        ),
        (
            "[destinations.c]\ntype = \"console\"\n[[routes]]\nname = \"r\"\nto = \"c\"\ntemplate = \"fancy\"\n",
            "routes[0] (r).template: no console template named `fancy`",
        ),
        (
            "[destinations.c]\ntype = \"console\"\n[[routes]]\nname = \"r\"\nto = \"c\"\n[[routes]]\nname = \"r\"\nto = \"c\"\n",
            "routes[1].name: `r` is used by an earlier route",
        ),
        ("[server\nlisten = 1\n", "(syntax): line 1, column"),
    ];
    for (text, want) in cases {
        let errs = errors(text, &[]);
        assert!(
            errs.iter()
                .any(|e| e.starts_with("/nonexistent/bizrelay.toml: ") && e.contains(want)),
            "{text:?}: wanted {want:?} in {errs:?}"
        );
    }
}

#[test]
fn type_errors_are_in_the_operators_words() {
    let failures = |n: usize| {
        (0..n)
            .map(|i| format!("[[routes]]\nname = \"r{i}\"\nto = \"c\"\n"))
            .collect::<String>()
    };
    let cases: Vec<(String, &str)> = vec![
        (
            "[delivery]\nmax_attempts = \"x\"\n".into(),
            "delivery.max_attempts: expected a whole number, got \"x\"",
        ),
        (
            "[delivery]\nmax_attempts = -1\n".into(),
            "delivery.max_attempts: expected a whole number, got -1",
        ),
        (
            format!(
                "[destinations.c]\ntype = \"console\"\n{}[[routes]]\nname = \"failures\"\nto = \"c\"\n[routes.group]\nwait = 30\n",
                failures(3)
            ),
            "routes[3] (failures).group.wait: expected a duration like \"30s\", got 30",
        ),
        (
            "[privacy]\nmask_recipient = \"yes\"\n".into(),
            "privacy.mask_recipient: expected true or false, got \"yes\"",
        ),
        ("server = 5\n".into(), "server: expected a table, got 5"),
        (
            "[[routes]]\nto = \"c\"\n".into(),
            "routes[0].name: is required",
        ),
        (
            "[[routes]]\nname = \"r\"\nto = 5\n".into(),
            "routes[0] (r).to: expected text or a list of texts, got 5",
        ),
        (
            "[delivery]\nmax_attempt = 3\n".into(),
            "delivery.max_attempt: unknown setting (did you mean max_attempts?)",
        ),
    ];
    for (text, want) in cases {
        let errs = errors(&text, &[]);
        assert_eq!(
            errs,
            vec![format!("/nonexistent/bizrelay.toml: {want}")],
            "{text}"
        );
        for rust in ["u32", "Duration", "struct", "enum", "Some(", "usize"] {
            assert!(!errs[0].contains(rust), "{errs:?}");
        }
    }
}

#[test]
fn override_errors_name_the_variable_and_the_closest_key() {
    let errs = errors("", &[("BIZRELAY__DELIVERY__MAX_ATTEMPT", "3")]);
    assert_eq!(
        errs,
        vec![
            "BIZRELAY__DELIVERY__MAX_ATTEMPT: delivery.max_attempt: unknown setting (did you mean max_attempts?)"
        ]
    );
    let errs = errors("", &[("BIZRELAY__DELIVERY__MAX_ATTEMPTS", "many")]);
    assert_eq!(
        errs,
        vec![
            "BIZRELAY__DELIVERY__MAX_ATTEMPTS: delivery.max_attempts: expected a whole number, got the value from $BIZRELAY__DELIVERY__MAX_ATTEMPTS"
        ]
    );
    // Whole-config checks name the variable too.
    let errs = errors("", &[("BIZRELAY__DELIVERY__MAX_ATTEMPTS", "0")]);
    assert_eq!(
        errs,
        vec!["BIZRELAY__DELIVERY__MAX_ATTEMPTS: delivery.max_attempts: must be at least 1"]
    );
}

#[test]
fn values_from_the_environment_are_never_echoed() {
    let secret = "SIGsecretXYZ123";
    let url = "https://hooks.slack.com/services/T000/B000/SECRETSECRET";
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case> = vec![
        (
            "[store]\nsync = \"${SYNC}\"\n",
            vec![("SYNC", secret)],
            "store.sync: expected one of \"full\", \"normal\", got the value from $SYNC",
        ),
        (
            "[destinations.x]\ntype = \"${SLACK_URL}\"\n",
            vec![("SLACK_URL", url)],
            "destinations.x.type: expected one of \"slack\", \"teams\", \"console\", \"dooray\", \"jandi\", \"google_chat\", \"discord\", \"mattermost\", \"webhook\", \"slack_bot\", got the value from $SLACK_URL",
        ),
        (
            "[delivery]\nmax_age = \"${A}-${B}\"\n",
            vec![("A", secret), ("B", "x")],
            "max_age: expected a duration like \"30s\", got the value from $A and $B",
        ),
        (
            "",
            vec![("BIZRELAY__STORE__SYNC", secret)],
            "BIZRELAY__STORE__SYNC: store.sync: expected one of \"full\", \"normal\", got the value from $BIZRELAY__STORE__SYNC",
        ),
        (
            "[destinations.c]\ntype = \"console\"\n[[routes]]\nname = \"r\"\nto = [\"c\", \"${DEST}\"]\n",
            vec![("DEST", secret)],
            "routes[0] (r).to: unknown destination `…` (the value from $DEST)",
        ),
    ];
    for (text, vars, want) in cases {
        let errs = errors(text, &vars);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(
            errs[0].ends_with(want),
            "{text}: wanted {want:?}, got {errs:?}"
        );
        for (_, value) in &vars {
            if value.len() > 1 {
                assert!(!errs[0].contains(value), "{errs:?}");
            }
        }
        assert!(
            !errs[0].contains("SECRET") && !errs[0].contains("secret"),
            "{errs:?}"
        );
    }
}

#[test]
fn defaults_fill_unset_variables() {
    let text =
        "[ingest]\nsignatures = [\"${SIG:-try-bizrelay}\"]\n[admin]\ntoken = \"${TOKEN:-}\"\n";
    let loaded = load(&file(text), &env(&[])).unwrap();
    assert_eq!(loaded.config.ingest.signatures, vec!["try-bizrelay"]);
    assert_eq!(
        loaded.config.admin.token, None,
        "an empty default turns reload over HTTP off"
    );
    let loaded = load(&file(text), &env(&[("SIG", "real"), ("TOKEN", "t")])).unwrap();
    assert_eq!(loaded.config.ingest.signatures, vec!["real"]);
    assert_eq!(loaded.config.admin.token.as_deref(), Some("t"));
}

#[test]
fn the_hash_ignores_secrets() {
    let text = "[ingest]\nsignatures = [\"${SIG}\"]\n[admin]\ntoken = \"${TOKEN}\"\n\
                [destinations.s]\ntype = \"slack\"\nurl = \"${URL}\"\n\
                [[routes]]\nname = \"r\"\nto = \"s\"\n";
    let hash = |sig: &str, token: &str, url: &str, extra: &str| {
        load(
            &file(&format!("{text}{extra}")),
            &env(&[("SIG", sig), ("TOKEN", token), ("URL", url)]),
        )
        .unwrap()
        .hash
    };
    let base = hash(
        "sig-a",
        "tok-a",
        "https://hooks.slack.com/services/T/B/A",
        "",
    );
    assert_eq!(
        base,
        hash(
            "sig-b",
            "tok-a",
            "https://hooks.slack.com/services/T/B/A",
            ""
        )
    );
    assert_eq!(
        base,
        hash(
            "sig-a",
            "tok-b",
            "https://hooks.slack.com/services/T/B/A",
            ""
        )
    );
    assert_eq!(
        base,
        hash(
            "sig-a",
            "tok-a",
            "https://hooks.slack.com/services/T/B/B",
            ""
        )
    );
    assert_ne!(
        base,
        hash(
            "sig-a",
            "tok-a",
            "https://hooks.slack.com/services/T/B/A",
            "continue = true\n"
        )
    );
    // Secrets from overrides are hidden the same way.
    let over = |sig: &str| {
        load(
            &ConfigSource::Builtin,
            &env(&[("BIZRELAY__INGEST__SIGNATURES", sig)]),
        )
        .unwrap()
        .hash
    };
    assert_eq!(over("one"), over("two"));
}

#[test]
fn errors_never_show_secret_values() {
    let secret = "https://hooks.slack.com/services/T000/B000/SECRETSECRET";
    let texts = [
        format!(
            "[destinations.x]\ntype = \"slack\"\nurl = \"{}\"\n",
            "not a url SECRETSECRET"
        ),
        format!("[server]\nmax_body_bytes = \"{secret}\"\n"),
        format!("[destinations.x]\ntype = \"slack\"\nurl = \"{secret}\"\nburst = \"{secret}\"\n"),
        format!("[admin]\nlisten = \"{secret}\"\n"),
        format!("[destinations.x]\ntype = \"slack\"\nurl = \"{secret}\n"),
    ];
    for text in texts {
        for e in errors(&text, &[]) {
            assert!(!e.contains("SECRETSECRET"), "{e}");
        }
    }
}

#[test]
fn missing_file_is_an_error_not_the_default() {
    let e = ConfigSource::read(Path::new("/nonexistent/config.toml")).unwrap_err();
    assert_eq!(e.key, "(file)");
    assert!(
        e.to_string()
            .starts_with("/nonexistent/config.toml: (file): cannot read")
    );
}

#[test]
fn hash_changes_with_config_and_templates() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    let text = "[destinations.c]\ntype = \"console\"\n[[routes]]\nname = \"r\"\nto = \"c\"\n";
    let source = ConfigSource::File {
        path: path.clone(),
        text: text.into(),
    };
    let a = load(&source, &HashMap::new()).unwrap().hash;
    let b = load(&source, &HashMap::new()).unwrap().hash;
    assert_eq!(a, b);
    std::fs::create_dir_all(dir.path().join("templates/console")).unwrap();
    std::fs::write(dir.path().join("templates/console/message_result.hbs"), "x").unwrap();
    let c = load(&source, &HashMap::new()).unwrap().hash;
    assert_ne!(a, c);
    let other = ConfigSource::File {
        path,
        text: format!("{text}continue = true\n"),
    };
    assert_ne!(c, load(&other, &HashMap::new()).unwrap().hash);
}

#[test]
fn example_config_runs_with_one_variable() {
    let text = include_str!("../../../config.toml.example");
    let vars = env(&[(
        "SLACK_WEBHOOK_URL",
        "https://hooks.slack.com/services/T/B/X",
    )]);
    let loaded = load(
        &ConfigSource::File {
            path: PathBuf::from(format!(
                "{}/config.toml.example",
                env!("CARGO_MANIFEST_DIR")
            )),
            text: text.into(),
        },
        &vars,
    )
    .unwrap_or_else(|e| panic!("{e:?}"));
    let c = &loaded.config;
    assert_eq!(c.ingest.signatures, vec![crate::config::EXAMPLE_SIGNATURE]);
    assert_eq!(c.admin.token, None, "reload over HTTP is off by default");
    assert_eq!(c.destinations.keys().collect::<Vec<_>>(), vec!["slack"]);
    assert!(loaded.routes.iter().any(|r| r.group.is_some()));
    assert!(
        loaded
            .warnings
            .iter()
            .any(|w| w.contains("INSECURE") && w.contains("try-bizrelay")),
        "{:?}",
        loaded.warnings
    );
    assert!(
        !loaded.warnings.iter().any(|w| w.contains("two digests")),
        "no hook reaches one destination twice: {:?}",
        loaded.warnings
    );
    // With the real signature set, no warning about it.
    let mut vars = vars;
    vars.insert("BIZRELAY_SIGNATURE".into(), "from-nhn".into());
    vars.insert("BIZRELAY_ADMIN_TOKEN".into(), "t".into());
    let loaded = load(&file(text), &vars).unwrap();
    assert_eq!(loaded.config.ingest.signatures, vec!["from-nhn"]);
    assert_eq!(loaded.config.admin.token.as_deref(), Some("t"));
    assert!(!loaded.warnings.iter().any(|w| w.contains("INSECURE")));
}

#[test]
fn two_grouped_routes_reaching_one_destination_are_warned_about() {
    let text = "[destinations.c]\ntype = \"console\"\n\
        [[routes]]\nname = \"a\"\nto = \"c\"\ncontinue = true\n[routes.match]\noutcome = \"failure\"\n[routes.group]\nby = []\n\
        [[routes]]\nname = \"b\"\nto = \"c\"\n[routes.match]\nkind = \"message_result\"\n[routes.group]\nby = [\"result_code\"]\n";
    let loaded = load(&file(text), &env(&[])).unwrap();
    assert!(
        loaded.warnings.iter().any(|w| w
            == "routes[0] (a) and routes[1] (b): one hook can take both (the first has `continue = true`), so c counts it in two digests; narrow one route's match or drop `continue`"),
        "{:?}",
        loaded.warnings
    );
}

#[test]
fn a_postgres_url_is_checked_without_quoting_it() {
    let bad = "[store]\nurl = \"mysql://u:hunter2@db/x\"\n";
    let errs = load(
        &ConfigSource::File {
            path: PathBuf::from("/etc/bizrelay/config.toml"),
            text: bad.into(),
        },
        &HashMap::new(),
    )
    .unwrap_err();
    let text = format!("{errs:?}");
    assert!(
        text.contains("store.url") && text.contains("postgres://"),
        "{text}"
    );
    assert!(!text.contains("hunter2"), "{text}");
    let good = "[store]\nurl = \"postgres://u:${PW}@db:5432/bizrelay?sslmode=verify-full\"\n";
    let env = HashMap::from([("PW".to_string(), "hunter2".to_string())]);
    let loaded = load(
        &ConfigSource::File {
            path: PathBuf::from("/etc/bizrelay/config.toml"),
            text: good.into(),
        },
        &env,
    )
    .unwrap();
    assert!(!format!("{:?}", loaded.config).contains("hunter2"));
    assert!(
        !serde_json::to_string(&*loaded.config)
            .unwrap()
            .contains("hunter2")
    );
}

#[test]
fn the_enrich_section_is_validated_with_operator_worded_errors_that_never_quote_the_secret() {
    let text = |extra: &str| format!("{GOOD}\n[enrich]\n{extra}\n");
    let vars = [
        ("SIG", "s"),
        ("SLACK_URL", "https://hooks.slack.com/services/T/B/X"),
    ];
    let ok = load(
        &file(&text(
            "enabled = true\nwait = \"2s\"\n[enrich.app_keys.AKx]\nsecret_key = \"${NHN_SECRET_KEY}\"",
        )),
        &env(&[vars[0], vars[1], ("NHN_SECRET_KEY", "s3cr3t-value")]),
    )
    .unwrap();
    let e = &ok.config.enrich;
    assert_eq!(e.secret_of("AKx").map(|s| s.expose()), Some("s3cr3t-value"));
    assert_eq!(e.secret_of("other"), None);
    assert!(!format!("{:?}", ok.config).contains("s3cr3t-value"));
    let errs = errors(
        &text(
            "enabled = true\nbase_url = \"ftp://x\"\nwait = \"5m\"\nmax_in_flight = 0\n\
             [enrich.app_keys.AKx]\nsecret_key = \"bad secret s3cr3t\"",
        ),
        &vars,
    );
    let all = errs.join("\n");
    assert!(
        all.contains("enrich.base_url: must be an https:// URL"),
        "{all}"
    );
    assert!(
        all.contains("enrich.wait: must be longer than 0s and at most 1m"),
        "{all}"
    );
    assert!(
        all.contains("enrich.max_in_flight: must be between 1 and 64"),
        "{all}"
    );
    assert!(
        all.contains("enrich.app_keys.AKx.secret_key: holds spaces"),
        "{all}"
    );
    assert!(!all.contains("s3cr3t"), "{all}");
    let errs = errors(&text("enabled = true"), &vars).join("\n");
    assert!(
        errs.contains("enrich.app_keys: enrichment is enabled but no app key"),
        "{errs}"
    );
    let errs = errors(&text("enabled = true\nshow_contents = true"), &vars).join("\n");
    assert!(
        errs.contains("show_contents"),
        "a misspelt key is refused: {errs}"
    );
}

#[test]
fn a_korean_config_can_keep_one_destination_in_english() {
    let text = r#"
[templates]
locale = "ko"

[destinations.ops]
type = "dooray"
url = "https://hook.dooray.com/services/1/2/abc"

[destinations.global-team]
type = "slack"
url = "https://hooks.slack.com/services/T/B/X"
locale = "en"

[[routes]]
name = "all"
to = ["ops", "global-team"]
"#;
    let loaded = load(
        &ConfigSource::File {
            path: PathBuf::from("config.toml"),
            text: text.into(),
        },
        &env(&[]),
    )
    .unwrap_or_else(|e| panic!("{e:?}"));
    let c = &loaded.config;
    let locale = |name: &str| c.locale_of(&c.destinations[name]);
    assert_eq!(locale("ops"), crate::locale::Locale::Ko);
    assert_eq!(locale("global-team"), crate::locale::Locale::En);
    // And the built-ins each destination gets speak its language.
    let s = crate::samples::one_of(crate::bizmessage::HookKind::Template).unwrap();
    for (name, want, not) in [
        ("ops", "템플릿", "Template code"),
        ("global-team", "Template code", "템플릿"),
    ] {
        let d = &c.destinations[name];
        let ctx = crate::context::hook_context(
            &s.envelope,
            &s.hook,
            &crate::context::Meta {
                route: "all",
                destination: name,
                destination_type: d.kind,
                locale: locale(name),
                received_at_ms: 0,
                mask_recipient: true,
            },
        );
        let body = loaded
            .renderer
            .render(d.kind, locale(name), "template_status", &ctx)
            .unwrap();
        assert!(body.contains(want) && !body.contains(not), "{name}: {body}");
    }
}
