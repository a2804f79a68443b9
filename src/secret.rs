//! Secret values from the config (webhook URLs, header values, signing secrets).
//!
//! Invariant: a [`Secret`] prints as `[redacted]` through `Debug`, `Display` and `Serialize`;
//! the only way to its text is [`Secret::expose`], so a secret reaches a log line, an error or
//! a dump of the config only where someone wrote `expose` on purpose.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What every printing of a secret shows.
pub const REDACTED: &str = "[redacted]";

#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself, for the one place that needs it (building a request).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(REDACTED)
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(REDACTED)
    }
}

/// Accepts strings and numbers (environment overrides arrive typed: a numeric token must not
/// become a type error), so a value is never refused for looking like a number.
impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Secret, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            S(String),
            I(i64),
            F(f64),
            B(bool),
        }
        Ok(Secret(match Raw::deserialize(d)? {
            Raw::S(s) => s,
            Raw::I(n) => n.to_string(),
            Raw::F(f) => f.to_string(),
            Raw::B(b) => b.to_string(),
        }))
    }
}

/// For `Option<Secret>` fields: an empty value counts as unset (an unset `${VAR}` that
/// expands to nothing is then reported as missing, not used).
pub fn lenient_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Secret>, D::Error> {
    Ok(Option::<Secret>::deserialize(d)?.filter(|s| !s.0.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("https://hook.dooray.com/services/1/2/TOKEN");
        assert_eq!(format!("{s:?} {s}"), "[redacted] [redacted]");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"[redacted]\"");
        assert_eq!(format!("{:?}", Some(&s)), "Some([redacted])");
        assert!(s.expose().ends_with("TOKEN"));
        let n: Secret = serde_json::from_str("123").unwrap();
        assert_eq!(n.expose(), "123");
    }
}
