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
            "/nonexistent/bizrelay.toml: destinations.ops-slack.url: environment variable SLACK_URL is not set"
        ]
    );
}

#[test]
fn expand_rules() {
    let vars = env(&[("A", "1"), ("B", "two")]);
    assert_eq!(expand("x${A}y${B}", &vars).unwrap(), "x1ytwo");
    assert_eq!(expand("cost $${A}", &vars).unwrap(), "cost ${A}");
    assert_eq!(expand("no vars $ here", &vars).unwrap(), "no vars $ here");
    assert!(expand("${A", &vars).unwrap_err().contains("unterminated"));
    assert!(expand("${A-B}", &vars).unwrap_err().contains("not a valid"));
}

#[test]
fn errors_name_file_key_and_reason() {
    let cases: Vec<(&str, &str)> = vec![
        ("[server]\nlisten = \"nope\"\n", "server.listen: "),
        (
            "[server]\nlistne = \"127.0.0.1:1\"\n",
            "server.listne: unknown field `listne`",
        ),
        (
            "[store]\nsync = \"sometimes\"\n",
            "store.sync: unknown variant",
        ),
        (
            "[store]\ndedup_window = \"a week\"\n",
            "store.dedup_window: ",
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
            "destinations.x.type: unknown variant",
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
fn example_config_is_valid() {
    let text = include_str!("../../../config.toml.example");
    let vars = env(&[
        (
            "SLACK_OPS_WEBHOOK_URL",
            "https://hooks.slack.com/services/T/B/X",
        ),
        (
            "SLACK_ALERTS_WEBHOOK_URL",
            "https://hooks.slack.com/services/T/B/Y",
        ),
        (
            "TEAMS_WORKFLOW_URL",
            "https://prod.example.invalid/workflows/z",
        ),
        ("BIZRELAY_SIGNATURE", "sig"),
        ("BIZRELAY_ADMIN_TOKEN", "token"),
    ]);
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
    assert!(loaded.routes.iter().any(|r| r.group.is_some()));
}
