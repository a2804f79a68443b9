//! Template errors in an operator's words: line and column numbered from 1 (as in the
//! excerpt shown for syntax errors), a missing variable by its name with the closest field of
//! the context, and never the rendered text (it may hold payload data).

use handlebars::{RenderError, RenderErrorReason, TemplateError};
use serde_json::Value;

use crate::suggest::closest;

/// How deep into the context the "did you mean" search looks.
const MAX_DEPTH: usize = 4;

/// A render error: `line 1, column 10: `templateCod` is not in the context (did you mean
/// `templateCode`?)`.
pub fn render_error(e: &RenderError, ctx: &Value) -> String {
    let reason = match e.reason() {
        RenderErrorReason::MissingVariable(Some(path)) => {
            let last = path.rsplit(['.', '/']).next().unwrap_or(path);
            let fields = context_fields(ctx);
            match closest(last, fields.iter().map(String::as_str)) {
                Some(near) => {
                    format!("`{path}` is not in the context (did you mean `{near}`?)")
                }
                None => format!("`{path}` is not in the context"),
            }
        }
        RenderErrorReason::MissingVariable(None) => "a variable is not in the context".into(),
        RenderErrorReason::HelperNotFound(name) => format!("no helper named `{name}`"),
        RenderErrorReason::PartialNotFound(name) | RenderErrorReason::TemplateNotFound(name) => {
            format!("no template named `{name}` to include")
        }
        other => other.to_string(),
    };
    at(e.line_no, e.column_no, reason)
}

/// A syntax error, with the line it is on and a caret under the column.
pub fn template_error(e: &TemplateError, source: &str) -> String {
    let reason = e.reason().to_string();
    let Some((line, column)) = e.pos() else {
        return reason;
    };
    let mut out = at(Some(line), Some(column), reason);
    if let Some(text) = source.lines().nth(line.saturating_sub(1)) {
        let number = line.to_string();
        let pad = " ".repeat(number.len());
        let caret = " ".repeat(
            text.chars()
                .take(column.saturating_sub(1))
                .map(|c| if c == '\t' { 4 } else { 1 })
                .sum(),
        );
        let shown = text.replace('\t', "    ");
        out.push_str(&format!("\n    {number} | {shown}\n    {pad} | {caret}^"));
    }
    out
}

fn at(line: Option<usize>, column: Option<usize>, reason: String) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!("line {l}, column {c}: {reason}"),
        (Some(l), None) => format!("line {l}: {reason}"),
        _ => reason,
    }
}

/// Every key of the context's objects (the first item of each list stands for the rest),
/// outer keys first.
fn context_fields(ctx: &Value) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut level = vec![ctx];
    for _ in 0..MAX_DEPTH {
        let mut next = Vec::new();
        for v in level {
            match v {
                Value::Object(map) => {
                    for (k, child) in map {
                        if !out.contains(k) {
                            out.push(k.clone());
                        }
                        next.push(child);
                    }
                }
                Value::Array(items) => next.extend(items.first()),
                _ => {}
            }
        }
        level = next;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use handlebars::Handlebars;
    use serde_json::json;

    fn strict() -> Handlebars<'static> {
        let mut reg = Handlebars::new();
        reg.set_strict_mode(true);
        reg
    }

    #[test]
    fn a_missing_variable_is_named_with_the_closest_field() {
        let reg = strict();
        let ctx = json!({"templateCode": "A", "comments": [{"content": "x"}]});
        let e = reg
            .render_template("{\n  \"text\": \"{{templateCod}}\"\n}", &ctx)
            .unwrap_err();
        assert_eq!(
            render_error(&e, &ctx),
            "line 2, column 12: `templateCod` is not in the context (did you mean `templateCode`?)"
        );
        let e = reg
            .render_template("{{#each comments}}{{contnet}}{{/each}}", &ctx)
            .unwrap_err();
        assert!(
            render_error(&e, &ctx)
                .ends_with("`contnet` is not in the context (did you mean `content`?)"),
            "{}",
            render_error(&e, &ctx)
        );
        let e = reg.render_template("{{zzzzzz}}", &ctx).unwrap_err();
        assert_eq!(
            render_error(&e, &ctx),
            "line 1, column 1: `zzzzzz` is not in the context"
        );
    }

    #[test]
    fn a_syntax_error_points_at_its_line_and_column() {
        let source = "{\n  \"text\": \"{{#if x}}\"\n}";
        let e = handlebars::Template::compile(source).unwrap_err();
        let (line, column) = e.pos().unwrap();
        let said = template_error(&e, source);
        let lines: Vec<&str> = said.lines().collect();
        assert!(
            lines[0].starts_with(&format!("line {line}, column {column}: ")),
            "{said}"
        );
        // The excerpt shows the line the message names, the caret under the column named.
        let text = source.lines().nth(line - 1).unwrap();
        assert_eq!(lines[1], format!("    {line} | {text}"));
        assert_eq!(
            lines[2].find('^'),
            Some(lines[1].find(" | ").unwrap() + 3 + column - 1)
        );
    }
}
