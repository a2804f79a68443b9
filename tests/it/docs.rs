//! The documentation, tested: every fenced code block of README.md and docs/**/*.md is either
//! checked here or marked `unchecked`, and the inventory test prints what was not checked.
//! TOML blocks go through `bizrelay check` (fragments inside a documented wrapper); shell
//! blocks with an `id` are run, as written, by the tests named in [`RUN_BY_TESTS`], in a
//! sandbox laid out like a checkout. The conventions are in docs/testing.md.

pub mod blocks;
mod commands;
mod session;

use std::io::Write;
use std::process::Command;

use blocks::{Block, all_blocks, block, blocks_of, dummy_value, env_references};

use crate::common::binary;

/// Blocks the tests below run or read, by document and id, with the test that does.
const RUN_BY_TESTS: &[(&str, &str, &str)] = &[
    (
        "docs/replicas.md",
        "recount",
        "conformance::counts::the_documented_recount_counts_what_an_older_replica_moved",
    ),
    (
        "README.md",
        "run",
        "commands::try_it_the_signed_curl_prints_the_rejection",
    ),
    (
        "README.md",
        "try-curl",
        "commands::try_it_the_signed_curl_prints_the_rejection",
    ),
    (
        "README.md",
        "try-output",
        "commands::try_it_the_signed_curl_prints_the_rejection",
    ),
    (
        "README.md",
        "try-route",
        "commands::dry_runs_print_the_documented_output",
    ),
    (
        "docs/routing.md",
        "route-json",
        "commands::dry_runs_print_the_documented_output",
    ),
    (
        "README.md",
        "first-route",
        "commands::first_route_sends_order_rejections_to_their_channel",
    ),
    (
        "README.md",
        "first-route-check",
        "commands::first_route_sends_order_rejections_to_their_channel",
    ),
    ("README.md", "run", "commands::newcomer_path_reaches_slack"),
    (
        "README.md",
        "try-curl",
        "commands::newcomer_path_reaches_slack",
    ),
    (
        "README.md",
        "slack-setup",
        "commands::newcomer_path_reaches_slack",
    ),
    (
        "README.md",
        "slack-serve",
        "commands::newcomer_path_reaches_slack",
    ),
    (
        "README.md",
        "slack-curl",
        "commands::newcomer_path_reaches_slack",
    ),
    (
        "docs/operations.md",
        "dead-letters",
        "commands::operations_commands_work_on_a_live_server",
    ),
    (
        "docs/operations.md",
        "reload",
        "commands::operations_commands_work_on_a_live_server",
    ),
    (
        "docs/operations.md",
        "health",
        "commands::operations_commands_work_on_a_live_server",
    ),
    (
        "docs/operations.md",
        "backup",
        "commands::operations_commands_work_on_a_live_server",
    ),
    (
        "docs/testing.md",
        "fragment-wrapper",
        "the_documented_wrapper_is_the_one_used",
    ),
];

/// Tests that are `#[ignore]`d for now, and why: the blocks only they run are listed as
/// pending, not as checked.
const PENDING_TESTS: &[(&str, &str)] = &[];

/// Documents that translate another one: their blocks with an id or file must be the same.
const TRANSLATIONS: &[(&str, &str)] = &[("docs/ko/README.md", "README.md")];

/// What a fragment (`toml fragment`) is checked inside: these destinations unless the fragment
/// declares them, and this route unless the fragment has routes. docs/testing.md shows it.
const FRAGMENT_WRAPPER: &str = r#"
[destinations.console]
type = "console"

[destinations.ops-slack]
type = "slack"
url = "https://hooks.slack.com/services/T0DOCS/B0DOCS/ops"

[destinations.alerts-slack]
type = "slack"
url = "https://hooks.slack.com/services/T0DOCS/B0DOCS/alerts"

[destinations.oncall-teams]
type = "teams"
url = "https://prod-00.example.invalid/workflows/docs"

[[routes]]
name = "docs-wrapper"
to = ["console"]
"#;

/// Writes a line past the test harness's capture, so the inventory shows in every run.
pub(crate) fn say(text: &str) {
    let _ = writeln!(std::io::stderr(), "{text}");
}

#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Config,
    TemplateFile,
    Run,
    Pending(String),
    Translation,
    Prose,
    Unchecked,
}

/// How the suite treats a block, or why it cannot.
fn verdict(b: &Block, blocks: &[Block]) -> Result<Verdict, String> {
    let known_words = ["fragment", "unchecked"];
    if let Some(w) = b.words.iter().find(|w| !known_words.contains(&w.as_str())) {
        return Err(format!("unknown info-string word `{w}`"));
    }
    if b.has("unchecked") {
        return Ok(Verdict::Unchecked);
    }
    if let Some(&(_, original)) = TRANSLATIONS.iter().find(|(t, _)| *t == b.doc)
        && (b.id.is_some() || b.file.is_some())
    {
        let same = blocks.iter().any(|o| {
            o.doc == original
                && ((b.id.is_some() && o.id == b.id) || (b.file.is_some() && o.file == b.file))
        });
        return if same {
            Ok(Verdict::Translation)
        } else {
            Err(format!("translates {original}, which has no such block"))
        };
    }
    if let Some(id) = &b.id {
        let tests: Vec<&str> = RUN_BY_TESTS
            .iter()
            .filter(|(doc, i, _)| *doc == b.doc && i == id)
            .map(|(_, _, t)| *t)
            .collect();
        if tests.is_empty() {
            return Err(format!(
                "id={id} is run by no test (add it to RUN_BY_TESTS)"
            ));
        }
        if let Some((_, why)) = PENDING_TESTS
            .iter()
            .find(|(t, _)| tests.iter().all(|x| x == t))
        {
            return Ok(Verdict::Pending(why.to_string()));
        }
        if b.lang == "toml" {
            return Ok(Verdict::Config);
        }
        return Ok(Verdict::Run);
    }
    match (b.lang.as_str(), &b.file) {
        ("toml", _) => Ok(Verdict::Config),
        ("handlebars", Some(file)) => {
            let name = std::path::Path::new(file)
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let used = blocks.iter().any(|o| {
                o.doc == b.doc
                    && o.lang == "toml"
                    && o.text.contains(&format!("template = \"{name}\""))
            });
            if used {
                Ok(Verdict::TemplateFile)
            } else {
                Err(format!("no TOML block of {} uses template `{name}`", b.doc))
            }
        }
        ("text", None) => Ok(Verdict::Prose),
        _ => Err("neither checked nor marked `unchecked` (see docs/testing.md)".into()),
    }
}

#[test]
fn every_code_block_is_checked_or_marked() {
    let blocks = all_blocks();
    let mut problems = Vec::new();
    let mut listed: Vec<(Verdict, String)> = Vec::new();
    for b in &blocks {
        match verdict(b, &blocks) {
            Ok(v) => listed.push((v, format!("{} ```{}", b.at(), b.info()))),
            Err(why) => problems.push(format!("{} ```{}: {why}", b.at(), b.info())),
        }
    }
    for (doc, id, test) in RUN_BY_TESTS {
        if !blocks
            .iter()
            .any(|b| b.doc == *doc && b.id.as_deref() == Some(*id))
        {
            problems.push(format!("{test} runs {doc} id={id}, which no longer exists"));
        }
    }
    let count = |f: &dyn Fn(&Verdict) -> bool| listed.iter().filter(|(v, _)| f(v)).count();
    say(&format!(
        "docs: {} code blocks in {} documents: {} TOML configs checked, {} templates checked with \
         them, {} run by tests, {} translations kept identical; not checked: {} prose, {} \
         pending, {} unchecked",
        blocks.len(),
        blocks::documents().len(),
        count(&|v| *v == Verdict::Config),
        count(&|v| *v == Verdict::TemplateFile),
        count(&|v| *v == Verdict::Run),
        count(&|v| *v == Verdict::Translation),
        count(&|v| *v == Verdict::Prose),
        count(&|v| matches!(v, Verdict::Pending(_))),
        count(&|v| *v == Verdict::Unchecked),
    ));
    for (v, at) in &listed {
        match v {
            Verdict::Pending(why) => say(&format!("docs: pending {at}: {why}")),
            Verdict::Unchecked => say(&format!("docs: unchecked {at}")),
            Verdict::Prose => say(&format!("docs: prose (not code) {at}")),
            _ => {}
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Merges a fragment into [`FRAGMENT_WRAPPER`].
fn wrap(fragment: &str) -> Result<String, String> {
    let mut table: toml::Table = toml::from_str(fragment).map_err(|e| e.to_string())?;
    let wrapper: toml::Table = toml::from_str(FRAGMENT_WRAPPER).unwrap();
    let dests = table
        .entry("destinations")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()))
        .as_table_mut()
        .ok_or("`destinations` is not a table")?;
    for (name, dest) in wrapper["destinations"].as_table().unwrap() {
        dests.entry(name).or_insert_with(|| dest.clone());
    }
    if !table.contains_key("routes") {
        table.insert("routes".into(), wrapper["routes"].clone());
    }
    toml::to_string(&table).map_err(|e| e.to_string())
}

/// Runs `bizrelay check` on a config in a fresh folder with the given template files and a
/// stand-in value for every `${VAR}` it names. Returns what check printed, or why it failed.
fn check(config: &str, templates: &[&Block]) -> Result<String, String> {
    let dir = tempfile::tempdir().unwrap();
    for t in templates {
        let path = dir.path().join(t.file.as_deref().unwrap());
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, &t.text).unwrap();
    }
    std::fs::write(dir.path().join("config.toml"), config).unwrap();
    let out = Command::new(binary())
        .args(["check", "--config", "config.toml"])
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env_references(config).iter().map(|n| (n, dummy_value(n))))
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(said)
    } else {
        Err(said)
    }
}

#[test]
fn every_toml_block_passes_check() {
    let blocks = all_blocks();
    let mut failures = Vec::new();
    let mut checked = 0;
    for b in blocks
        .iter()
        .filter(|b| b.lang == "toml" && !b.has("unchecked"))
    {
        let templates: Vec<&Block> = blocks
            .iter()
            .filter(|t| t.doc == b.doc && t.lang == "handlebars" && t.file.is_some())
            .collect();
        let config = if b.has("fragment") {
            match wrap(&b.text) {
                Ok(c) => c,
                Err(e) => {
                    failures.push(format!("{}: not TOML: {e}", b.at()));
                    continue;
                }
            }
        } else {
            b.text.clone()
        };
        checked += 1;
        match check(&config, &templates) {
            Ok(said) => assert!(said.contains("ok: "), "{}: {said}", b.at()),
            Err(said) => failures.push(format!("{}:\n{}\n{said}", b.at(), b.text)),
        }
    }
    assert!(checked >= 10, "only {checked} TOML blocks found");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn a_broken_block_fails_the_check() {
    // The check above can fail: a typo in a key and a missing template are both caught.
    assert!(check("[server]\nlisten_addr = \"127.0.0.1:1\"\n", &[]).is_err());
    let route = "[[routes]]\nname = \"r\"\nto = \"ops-slack\"\ntemplate = \"nowhere\"\n";
    let err = check(&wrap(route).unwrap(), &[]).unwrap_err();
    assert!(err.contains("no slack template named `nowhere`"), "{err}");
    // The wrapper keeps a fragment's own destination and adds only the others.
    let own = wrap("[destinations.ops-slack]\ntype = \"console\"\n").unwrap();
    assert!(own.contains("type = \"console\"") && own.contains("[destinations.alerts-slack]"));
}

#[test]
fn the_documented_wrapper_is_the_one_used() {
    let shown = block("docs/testing.md", "fragment-wrapper");
    assert_eq!(shown.text.trim(), FRAGMENT_WRAPPER.trim());
}

#[test]
fn korean_quick_start_is_in_step_with_the_readme() {
    let readme = blocks_of("README.md");
    let korean = blocks_of("docs/ko/README.md");
    let key = |b: &Block| b.id.clone().or_else(|| b.file.clone());
    for b in readme.iter().filter(|b| key(b).is_some()) {
        let k = key(b).unwrap();
        let Some(ko) = korean.iter().find(|o| key(o).as_ref() == Some(&k)) else {
            panic!(
                "docs/ko/README.md lacks the README's block {k} ({})",
                b.at()
            );
        };
        assert_eq!(ko.text, b.text, "{} differs from {}", ko.at(), b.at());
        assert_eq!(ko.lang, b.lang, "{}", ko.at());
    }
    let head: String = std::fs::read_to_string(blocks::repo().join("README.md"))
        .unwrap()
        .lines()
        .take(5)
        .collect();
    assert!(head.contains("(docs/ko/README.md)"), "linked from the top");
    let ko = std::fs::read_to_string(blocks::repo().join("docs/ko/README.md")).unwrap();
    assert!(ko.contains("## Dooray!"), "the Dooray! section is there");
}
