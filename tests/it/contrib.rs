//! Files shipped for operators in contrib/: the systemd unit parses as systemd reads it, and
//! `systemd-analyze verify` accepts it where that tool is installed.

use std::path::PathBuf;
use std::process::Command;

fn unit_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("contrib/bizrelay.service")
}

/// Problems systemd would not report but would act on: systemd takes `#` as a comment only at
/// the start of a line, so `Key=value  # note` makes "value  # note" the value.
fn unit_problems(text: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let mut section = None;
    for (n, line) in text.lines().enumerate() {
        let n = n + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if line.starts_with('[') && line.ends_with(']') {
            section = Some(line.to_string());
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            problems.push(format!(
                "line {n}: neither a section, a comment nor Key=value"
            ));
            continue;
        };
        if section.is_none() {
            problems.push(format!("line {n}: `{key}` outside any section"));
        }
        if !key.trim().chars().all(|c| c.is_ascii_alphanumeric()) {
            problems.push(format!("line {n}: `{key}` is not a systemd key"));
        }
        let words: Vec<&str> = value.split_whitespace().collect();
        if words
            .iter()
            .skip(1)
            .any(|w| w.starts_with('#') || w.starts_with(';'))
        {
            problems.push(format!(
                "line {n}: `{}` has a comment after its value, which systemd keeps as part of it",
                key.trim()
            ));
        }
        if value.trim_end().ends_with('\\') {
            problems.push(format!("line {n}: continued onto the next line"));
        }
        if matches!(
            key.trim(),
            "EnvironmentFile" | "WorkingDirectory" | "ReadWritePaths"
        ) && words.len() != 1
        {
            problems.push(format!("line {n}: `{}` must be one path", key.trim()));
        }
    }
    problems
}

#[test]
fn the_unit_file_has_no_inline_comments() {
    let text = std::fs::read_to_string(unit_path()).expect("contrib/bizrelay.service exists");
    assert_eq!(unit_problems(&text), Vec::<String>::new());
    for key in [
        "ExecStart=",
        "ExecReload=",
        "EnvironmentFile=",
        "KillSignal=SIGTERM",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(key)),
            "the unit sets {key}"
        );
    }
    // The checker catches the mistake the README's unit had.
    let readme_line =
        "[Service]\nEnvironmentFile=/etc/bizrelay/env          # SLACK_OPS_WEBHOOK_URL=...\n";
    assert_eq!(
        unit_problems(readme_line).len(),
        2,
        "{:?}",
        unit_problems(readme_line)
    );
}

#[test]
fn systemd_analyze_verifies_the_unit_where_installed() {
    let Ok(out) = Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!("systemd-analyze is not installed: only the parse check ran");
        return;
    };
    assert!(out.status.success());
    // verify insists that ExecStart names an existing executable: point it at the binary
    // just built, in a copy of the unit.
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("bizrelay.service");
    let text = std::fs::read_to_string(unit_path()).unwrap();
    std::fs::write(
        &copy,
        text.replace("/usr/local/bin/bizrelay", env!("CARGO_BIN_EXE_bizrelay")),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()
        .unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{report}");
    // verify exits 0 on unknown keys and unparsable values, reporting them as warnings that
    // name the file.
    let about_unit: Vec<&str> = report
        .lines()
        .filter(|l| l.contains("bizrelay.service"))
        .collect();
    assert!(about_unit.is_empty(), "{about_unit:#?}");
}
