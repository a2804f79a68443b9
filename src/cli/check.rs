//! `bizrelay check`: validates the config, compiles every template, and runs the same
//! rehearsal as reload ([`crate::preflight`]): every template a route uses rendered against
//! the built-in samples, reporting output that is not valid JSON or breaks a destination limit
//! even after truncation.

use std::collections::HashMap;
use std::process::ExitCode;

use super::count;
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
        println!("warning: {w}");
    }
    let (problems, renders) = render_all(&loaded);
    for p in &problems {
        println!("error: {p}");
    }
    if problems.is_empty() {
        println!(
            "ok: {} ({}): {}, {}, {} checked",
            loaded.origin,
            loaded.hash,
            count(loaded.routes.len(), "route", "routes"),
            count(
                loaded.config.destinations.len(),
                "destination",
                "destinations"
            ),
            count(renders, "render", "renders"),
        );
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
