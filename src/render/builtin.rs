//! The built-in templates, compiled into the binary from `templates/<type>/<name>.hbs`, so
//! bizrelay runs anywhere without its source tree.

use crate::destination::DestinationKind;

/// Names every destination type has a built-in for.
pub const BUILTIN_NAMES: [&str; 4] = [
    "template_status",
    "message_result",
    "unknown_event",
    "message_digest",
];

macro_rules! builtins {
    ($kind:literal) => {
        [
            (
                "template_status",
                include_str!(concat!("../../templates/", $kind, "/template_status.hbs")),
            ),
            (
                "message_result",
                include_str!(concat!("../../templates/", $kind, "/message_result.hbs")),
            ),
            (
                "unknown_event",
                include_str!(concat!("../../templates/", $kind, "/unknown_event.hbs")),
            ),
            (
                "message_digest",
                include_str!(concat!("../../templates/", $kind, "/message_digest.hbs")),
            ),
        ]
    };
}

pub fn templates(kind: DestinationKind) -> [(&'static str, &'static str); 4] {
    match kind {
        DestinationKind::Slack => builtins!("slack"),
        DestinationKind::Teams => builtins!("teams"),
        DestinationKind::Console => builtins!("console"),
    }
}
