//! `bizrelay check`: validates the config, compiles every template, and runs the same
//! rehearsal as reload ([`crate::preflight`]): every template a route uses rendered against
//! the built-in samples, reporting output that is not valid JSON or breaks a destination limit
//! even after truncation.

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
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
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
