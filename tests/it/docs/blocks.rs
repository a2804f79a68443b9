//! The code blocks of the documentation: README.md and every docs/**/*.md, read with a real
//! Markdown parser, each with its document, line and info string.
//!
//! The info string is `LANG WORD... KEY=VALUE...` (GitHub shows only LANG). The words and keys
//! this suite understands are described in docs/testing.md: `fragment`, `unchecked`,
//! `id=NAME`, `file=PATH`.

use std::path::{Path, PathBuf};

use pulldown_cmark::{CodeBlockKind, Event, Parser, Tag, TagEnd};

/// One fenced code block.
#[derive(Debug, Clone)]
pub struct Block {
    /// The document, relative to the repository root, e.g. `docs/routing.md`.
    pub doc: String,
    /// The line of the opening fence, from 1.
    pub line: usize,
    pub lang: String,
    /// Bare words after the language (`fragment`, `unchecked`).
    pub words: Vec<String>,
    /// `id=NAME`: the name a test uses to find the block.
    pub id: Option<String>,
    /// `file=PATH`: the block is that file's content (a template next to a config).
    pub file: Option<String>,
    /// The block's content, without the fences and without list indentation.
    pub text: String,
}

impl Block {
    pub fn at(&self) -> String {
        format!("{}:{}", self.doc, self.line)
    }

    pub fn has(&self, word: &str) -> bool {
        self.words.iter().any(|w| w == word)
    }

    /// The info string as written, for listings.
    pub fn info(&self) -> String {
        let mut parts = vec![self.lang.clone()];
        parts.extend(self.words.iter().cloned());
        parts.extend(self.id.iter().map(|id| format!("id={id}")));
        parts.extend(self.file.iter().map(|f| format!("file={f}")));
        parts.join(" ")
    }
}

pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// README.md and every Markdown file under docs/, in a stable order.
pub fn documents() -> Vec<String> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "md") {
                out.push(path);
            }
        }
    }
    let mut found = Vec::new();
    walk(&repo().join("docs"), &mut found);
    let mut docs: Vec<String> = found
        .iter()
        .map(|p| {
            p.strip_prefix(repo())
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    docs.sort();
    docs.insert(0, "README.md".to_string());
    docs
}

/// The fenced code blocks of one document.
pub fn blocks_of(doc: &str) -> Vec<Block> {
    let source = std::fs::read_to_string(repo().join(doc))
        .unwrap_or_else(|e| panic!("cannot read {doc}: {e}"));
    let mut blocks = Vec::new();
    let mut open: Option<Block> = None;
    for (event, range) in Parser::new(&source).into_offset_iter() {
        match event {
            Event::Start(Tag::CodeBlock(kind)) => {
                let info = match kind {
                    CodeBlockKind::Fenced(info) => info.to_string(),
                    CodeBlockKind::Indented => String::new(),
                };
                let line = source[..range.start].matches('\n').count() + 1;
                open = Some(parse_info(doc, line, &info));
            }
            Event::Text(text) => {
                if let Some(b) = open.as_mut() {
                    b.text.push_str(&text);
                }
            }
            Event::End(TagEnd::CodeBlock) => blocks.extend(open.take()),
            _ => {}
        }
    }
    blocks
}

fn parse_info(doc: &str, line: usize, info: &str) -> Block {
    let mut parts = info.split_whitespace();
    let lang = parts.next().unwrap_or_default().to_string();
    let mut block = Block {
        doc: doc.to_string(),
        line,
        lang,
        words: Vec::new(),
        id: None,
        file: None,
        text: String::new(),
    };
    for part in parts {
        match part.split_once('=') {
            Some(("id", v)) => block.id = Some(v.to_string()),
            Some(("file", v)) => block.file = Some(v.to_string()),
            // Unknown keys stay words, so the inventory reports them instead of ignoring them.
            _ => block.words.push(part.to_string()),
        }
    }
    block
}

/// Every block of every document.
pub fn all_blocks() -> Vec<Block> {
    documents().iter().flat_map(|d| blocks_of(d)).collect()
}

/// The block of `doc` named `id`; panics (naming both) when there is none.
pub fn block(doc: &str, id: &str) -> Block {
    blocks_of(doc)
        .into_iter()
        .find(|b| b.id.as_deref() == Some(id))
        .unwrap_or_else(|| {
            panic!("{doc} has no code block with id={id} (tests/it/docs.rs runs it)")
        })
}

/// The block of `doc` that holds the file `path`.
pub fn file_block(doc: &str, path: &str) -> Block {
    blocks_of(doc)
        .into_iter()
        .find(|b| b.file.as_deref() == Some(path))
        .unwrap_or_else(|| panic!("{doc} has no code block with file={path}"))
}

/// `${VAR}` names a config text refers to (`$${` is a literal and refers to nothing).
pub fn env_references(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(pos) = text[i..].find("${") {
        let start = i + pos;
        i = start + 2;
        if start > 0 && bytes[start - 1] == b'$' {
            continue;
        }
        let name: String = text[start + 2..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() && !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

/// A stand-in value for an environment variable a documented config refers to: a valid https
/// URL for names ending in `URL` (destinations check that), a plain word otherwise.
pub fn dummy_value(name: &str) -> String {
    if name.ends_with("URL") {
        format!("https://hooks.slack.com/services/T0DOCS/B0DOCS/{name}")
    } else if name.ends_with("WEBHOOK_SECRET") {
        // A Standard Webhooks secret: `whsec_` and base64.
        "whsec_ZG9jcy1kdW1teS1zaWduaW5nLXNlY3JldA==".to_string()
    } else {
        format!("docs-dummy-{name}")
    }
}

#[test]
fn info_strings_and_env_references_are_read() {
    let b = parse_info(
        "x.md",
        3,
        "toml fragment id=a file=templates/slack/x.hbs odd=1",
    );
    assert_eq!(b.lang, "toml");
    assert!(b.has("fragment"));
    assert_eq!(b.id.as_deref(), Some("a"));
    assert_eq!(b.file.as_deref(), Some("templates/slack/x.hbs"));
    assert_eq!(b.words, ["fragment", "odd=1"]);
    assert_eq!(
        b.info(),
        "toml fragment odd=1 id=a file=templates/slack/x.hbs"
    );
    assert_eq!(
        env_references("a = \"${ONE}\" b = \"$${NOT}\" c = \"${TWO:-x}${ONE}\""),
        ["ONE", "TWO"]
    );
}
