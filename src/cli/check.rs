//! `bizrelay check`: validates the config, compiles every template, and runs the same
//! rehearsal as reload ([`crate::preflight`]): every template a route uses rendered against
//! the built-in samples, reporting output that is not valid JSON or breaks a destination limit
//! even after truncation. It also names the live silences of the store, if there is one.

use std::collections::HashMap;
use std::process::ExitCode;

use super::{count, out};
use crate::preflight::render_all;
use crate::reload::SourceSpec;

pub fn run(spec: &SourceSpec, env: &HashMap<String, String>) -> ExitCode {
    let loaded = match super::load_config(spec, env) {
        Ok(l) => l,
        Err(errors) => {
            super::print_config_errors(&errors);
            return ExitCode::from(1);
        }
    };
    for w in &loaded.warnings {
        out::line(&format!("warning: {}", out::cell(&w.to_string())));
    }
    let (problems, renders) = render_all(&loaded);
    for p in &problems {
        out::line(&format!("error: {}", out::cell(p)));
    }
    if problems.is_empty() {
        out::line(&format!(
            "ok: {} ({}): {}, {}, {} checked",
            out::cell(&loaded.origin.to_string()),
            loaded.hash,
            count(loaded.routes.len(), "route", "routes"),
            count(
                loaded.config.destinations.len(),
                "destination",
                "destinations"
            ),
            count(renders, "render", "renders"),
        ));
        show_silences(&loaded);
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Names the live silences of the store (none when there is no store yet), since they change
/// what the routes above send.
fn show_silences(loaded: &crate::config::Loaded) {
    let Ok(rt) = super::runtime() else {
        return;
    };
    let now = crate::state::now_ms();
    for s in rt.block_on(super::route::live_silences(loaded)) {
        out::line(&format!(
            "silence {} is {} until {} KST: hooks matching {} are stored and counted, not sent ({})",
            s.id,
            crate::silence::status(&s, now),
            crate::context::format_ms(s.ends_at),
            out::cell(&crate::silence::describe(&s.matchers)),
            out::cell(&s.comment)
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::count;

    #[test]
    fn counts_agree_with_their_nouns() {
        assert_eq!(count(1, "route", "routes"), "1 route");
        assert_eq!(count(0, "route", "routes"), "0 routes");
        assert_eq!(count(2, "hook", "hooks"), "2 hooks");
    }
}
