//! The request a service builds for one stored body; `deliver` sends it as is.
//!
//! Invariant: the URL is a [`Secret`] and every header that carries a credential is marked
//! sensitive, so neither can be printed by `Debug` (deliver also marks them sensitive for the
//! HTTP stack).

use super::DestinationConfig;
use crate::secret::Secret;

/// One body on its way out.
#[derive(Debug, Clone, Copy)]
pub struct Outgoing<'a> {
    /// Stable per delivery, the same on every retry (the delivery id; send-test makes one up).
    pub id: &'a str,
    pub body: &'a str,
    /// When this attempt is made, in Unix seconds (signatures carry it).
    pub unix_time: i64,
}

#[derive(Debug, Clone)]
pub enum Request {
    /// Print on stdout (the console).
    Stdout(String),
    Http(HttpRequest),
}

/// A POST.
#[derive(Debug, Clone)]
pub struct HttpRequest {
    pub url: Secret,
    pub headers: Vec<Header>,
    pub body: String,
}

#[derive(Clone, PartialEq, Eq)]
pub struct Header {
    pub name: String,
    pub value: String,
    /// A credential (an API key, a signature): never printed.
    pub sensitive: bool,
}

impl Header {
    pub fn new(name: &str, value: impl Into<String>) -> Header {
        Header {
            name: name.to_string(),
            value: value.into(),
            sensitive: false,
        }
    }

    pub fn secret(name: &str, value: impl Into<String>) -> Header {
        Header {
            sensitive: true,
            ..Header::new(name, value)
        }
    }
}

impl std::fmt::Debug for Header {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let value = if self.sensitive {
            crate::secret::REDACTED
        } else {
            &self.value
        };
        write!(f, "{}: {value}", self.name)
    }
}

impl HttpRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_str())
    }
}

/// Why no request could be built (reported like a transport error: retried, then dead).
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum RequestError {
    #[error("destination has no url")]
    NoUrl,
    #[error("destination settings are invalid: {0}")]
    Settings(String),
}

/// The header every post carries, so a receiver can tell a resend after a crash.
pub const DELIVERY_HEADER: &str = "X-Bizrelay-Delivery";
pub const JSON: &str = "application/json; charset=utf-8";

/// A JSON POST of `body` to the destination's URL with the usual headers, then `extra`.
pub fn json_post(
    dest: &DestinationConfig,
    out: &Outgoing<'_>,
    body: String,
    extra: Vec<Header>,
) -> Result<Request, RequestError> {
    let url = dest.url.clone().ok_or(RequestError::NoUrl)?;
    let mut headers = vec![
        Header::new("Content-Type", JSON),
        Header::new(DELIVERY_HEADER, out.id),
    ];
    for h in extra {
        headers.retain(|old| !old.name.eq_ignore_ascii_case(&h.name));
        headers.push(h);
    }
    Ok(Request::Http(HttpRequest { url, headers, body }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sensitive_headers_and_urls_do_not_print() {
        let r = HttpRequest {
            url: Secret::new("https://x.invalid/services/TOKEN"),
            headers: vec![
                Header::new("Content-Type", JSON),
                Header::secret("X-Api-Key", "KEY123"),
            ],
            body: "{}".into(),
        };
        let shown = format!("{r:?}");
        assert!(
            !shown.contains("TOKEN") && !shown.contains("KEY123"),
            "{shown}"
        );
        assert!(shown.contains("Content-Type: application/json"), "{shown}");
        assert_eq!(r.header("x-api-key"), Some("KEY123"));
    }
}
