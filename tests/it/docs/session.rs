//! A reader's terminal session, for running the documentation's shell blocks as written: a
//! temporary folder laid out like a checkout, blocks run one after another by `sh -e` in it,
//! variables a block exports kept for the next block, and servers started in the background.
//!
//! What differs from a reader's machine (docs/testing.md lists it): the binary is the one
//! `cargo test` built; `cargo run --release` is run as `./target/release/bizrelay`, which it
//! builds; servers listen on a free port (`BIZRELAY__SERVER__LISTEN=127.0.0.1:0`) with JSON
//! logs, and a test replaces `127.0.0.1:8080` and example URLs in a block by what it set up.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::blocks::{Block, repo};
use crate::common::binary;

/// What a block printed.
#[derive(Debug)]
pub struct Ran {
    pub stdout: String,
    pub stderr: String,
}

pub struct Session {
    pub dir: tempfile::TempDir,
    /// The environment the next block starts with (what earlier blocks exported).
    pub env: BTreeMap<String, String>,
}

impl Session {
    /// A folder with what the documentation's commands expect of a checkout: the fixtures,
    /// the example config, `./target/release/bizrelay`, and `bizrelay` on PATH (as installed by
    /// `cargo install --path .`). Nothing from the developer's environment leaks in
    /// (no BIZRELAY_* variables, no RUST_LOG).
    pub fn new() -> Session {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("tests/fixtures")).unwrap();
        for entry in std::fs::read_dir(repo().join("tests/fixtures")).unwrap() {
            let path = entry.unwrap().path();
            if !path.is_file() {
                continue;
            }
            std::fs::copy(
                &path,
                root.join("tests/fixtures").join(path.file_name().unwrap()),
            )
            .unwrap();
        }
        std::fs::copy(
            repo().join("config.toml.example"),
            root.join("config.toml.example"),
        )
        .unwrap();
        for folder in ["target/release", "bin"] {
            std::fs::create_dir_all(root.join(folder)).unwrap();
            std::os::unix::fs::symlink(binary(), root.join(folder).join("bizrelay")).unwrap();
        }
        let path = format!(
            "{}:{}",
            root.join("bin").display(),
            std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into())
        );
        let env = BTreeMap::from([
            ("PATH".to_string(), path),
            ("HOME".to_string(), root.display().to_string()),
        ]);
        Session { dir, env }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Writes a file in the session's folder (what a reader does in an editor).
    pub fn write(&self, rel: &str, text: &str) {
        let path = self.path(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    /// The bizrelay binary with the session's folder and environment, for a test's own
    /// commands between documented ones.
    pub fn bizrelay(&self, args: &[&str]) -> std::process::Output {
        Command::new(binary())
            .args(args)
            .current_dir(self.dir.path())
            .env_clear()
            .envs(&self.env)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// Runs a block with `sh -e` after the replacements; panics with everything it printed
    /// when it fails. Variables it exports stay set for later blocks.
    pub fn run(&mut self, block: &Block, replace: &[(&str, &str)]) -> Ran {
        let text = substitute(block, replace);
        let env_file = self.path(".session-env");
        let script = format!("{text}\nenv -0 > \"$DOCS_SESSION_ENV\"\n");
        let out = Command::new("sh")
            .arg("-ec")
            .arg(&script)
            .current_dir(self.dir.path())
            .env_clear()
            .envs(&self.env)
            .env("DOCS_SESSION_ENV", &env_file)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("{}: cannot run sh: {e}", block.at()));
        let ran = Ran {
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        assert!(
            out.status.success(),
            "{} failed ({}):\n{text}\n--- stdout:\n{}\n--- stderr:\n{}",
            block.at(),
            out.status,
            ran.stdout,
            ran.stderr
        );
        let exported = std::fs::read(&env_file).unwrap();
        self.env = String::from_utf8_lossy(&exported)
            .split('\0')
            .filter_map(|kv| kv.split_once('='))
            .filter(|(k, _)| !["DOCS_SESSION_ENV", "PWD", "OLDPWD", "SHLVL", "_"].contains(k))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ran
    }

    /// Starts a block that runs the server in the foreground (one command) in the background,
    /// and waits until it listens.
    pub fn serve(&self, block: &Block) -> Server {
        let command = block.text.trim();
        assert!(
            !command.contains('\n'),
            "{}: a server block must be one command",
            block.at()
        );
        let command = command.replace("cargo run --release", "./target/release/bizrelay");
        self.serve_command(&command)
    }

    /// Starts a server command that is not in the documentation (a test's own set-up).
    pub fn serve_command(&self, command: &str) -> Server {
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(format!("exec {command}"))
            .current_dir(self.dir.path())
            .env_clear()
            .envs(&self.env)
            .env("BIZRELAY__SERVER__LISTEN", "127.0.0.1:0")
            .env("BIZRELAY__LOG__FORMAT", "json")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = collect(child.stdout.take().unwrap(), None);
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = collect(child.stderr.take().unwrap(), Some(tx));
        let addr = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(addr) => addr,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "`{command}` did not start listening: {}",
                    stderr.lock().unwrap().join("\n")
                );
            }
        };
        Server {
            child,
            addr,
            stdout,
            stderr,
        }
    }
}

/// Reads a pipe line by line into a shared list; sends the address of the first
/// "bizrelay is listening" log line, if asked to.
fn collect(
    pipe: impl std::io::Read + Send + 'static,
    listening: Option<std::sync::mpsc::Sender<SocketAddr>>,
) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&lines);
    std::thread::spawn(move || {
        let mut listening = listening;
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            if line.contains("bizrelay is listening")
                && let Some(tx) = listening.take()
            {
                let v: serde_json::Value = serde_json::from_str(&line).unwrap();
                let _ = tx.send(v["listen"].as_str().unwrap().parse().unwrap());
            }
            sink.lock().unwrap().push(line);
        }
    });
    lines
}

fn substitute(block: &Block, replace: &[(&str, &str)]) -> String {
    let mut text = block.text.clone();
    for (from, to) in replace {
        assert!(
            text.contains(from),
            "{}: expected `{from}` in the block to replace it",
            block.at()
        );
        text = text.replace(from, to);
    }
    text
}

/// A server started from a session, killed when dropped.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Server {
    pub fn addr(&self) -> String {
        self.addr.to_string()
    }

    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap().join("\n")
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    /// Waits until stdout holds `text` (panics with what it holds after `timeout`).
    pub fn wait_stdout(&self, text: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.stdout().contains(text) {
            assert!(
                Instant::now() < deadline,
                "stdout never showed {text:?} within {timeout:?}:\n{}\n--- stderr:\n{}",
                self.stdout(),
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Ctrl-C: SIGINT, then waits for the exit.
    pub fn interrupt(&mut self) -> ExitStatus {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGINT,
        )
        .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "no exit 30 s after Ctrl-C");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether a program is on this machine's PATH.
pub fn installed(program: &str) -> bool {
    std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .any(|dir| Path::new(dir).join(program).is_file())
}
