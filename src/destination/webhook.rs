//! A generic JSON webhook for anything else (a ticketing system, a serverless function): a
//! documented, versioned document per hook and per digest, optional extra headers, and
//! Standard Webhooks signatures.
//!
//! Invariants:
//! - The built-in document is `{"schema_version": 1, "kind", "title", "summary", "locale",
//!   "route", "destination", "data"}`, `data` being the whole template context (docs/
//!   destinations.md documents it); [`SCHEMA_VERSION`] changes when a field changes meaning
//!   or goes away (new fields do not change it).
//! - With `signing_secret` (`whsec_<base64>`), every post carries `webhook-id` (the delivery
//!   id: the same on every retry), `webhook-timestamp` (Unix seconds of this attempt) and
//!   `webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">` keyed by the
//!   decoded secret, as the Standard Webhooks specification says.
//! - Header values and the secret are secrets: checked without being quoted, sent marked
//!   sensitive, never printed.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Sha256;

use super::config::UrlShape;
use super::fitting::{object, shrink_to_bytes};
use super::{
    Builtins, ChatService, Checks, DestinationConfig, DestinationKind, FallbackInfo, Header,
    LimitError, Outgoing, Pacing, Request, RequestError, builtins, request,
};
use crate::locale::Locale;
use crate::secret::Secret;

pub const SCHEMA_VERSION: u64 = 1;
/// Largest document sent; longer texts are shortened to fit.
pub const MAX_BYTES: usize = 256 * 1024;
/// Recommended by Standard Webhooks: secrets of 24 to 64 bytes.
pub const MIN_SECRET_BYTES: usize = 24;
const SECRET_PREFIX: &str = "whsec_";

/// Headers bizrelay sets itself; config may not replace them.
const RESERVED: [&str; 7] = [
    "content-type",
    "content-length",
    "host",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "x-bizrelay-delivery",
];

pub struct Webhook;
pub const KIND: DestinationKind = DestinationKind::of(&Webhook);

static TEMPLATES: [Builtins; 2] = builtins!("webhook");

const URL: UrlShape = UrlShape {
    what: "an http(s) endpoint",
    hosts: &[],
    path_prefix: "",
    example: "https://tickets.example.com/hooks/bizrelay",
};

#[derive(Debug, Default, Deserialize)]
struct Settings {
    #[serde(default)]
    headers: BTreeMap<String, Secret>,
    #[serde(default)]
    signing_secret: Option<Secret>,
}

/// The key of a `whsec_<base64>` secret.
fn secret_key(secret: &Secret) -> Result<Vec<u8>, &'static str> {
    let b64 = secret
        .expose()
        .strip_prefix(SECRET_PREFIX)
        .ok_or("must start with whsec_ (the Standard Webhooks form)")?;
    match STANDARD.decode(b64.trim()) {
        Ok(key) if !key.is_empty() => Ok(key),
        _ => Err("is not whsec_ followed by base64"),
    }
}

/// `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`.
pub fn signature(key: &[u8], id: &str, timestamp: i64, body: &str) -> String {
    // HMAC takes keys of any length.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return String::new();
    };
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body.as_bytes());
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

fn settings(dest: &DestinationConfig) -> Result<Settings, RequestError> {
    dest.options
        .parse()
        .map_err(|(k, reason)| RequestError::Settings(format!("{k}: {reason}")))
}

impl ChatService for Webhook {
    fn name(&self) -> &'static str {
        "webhook"
    }

    fn default_pacing(&self) -> Pacing {
        Pacing {
            rate: Some(5.0),
            burst: 10,
        }
    }

    fn settings(&self) -> &'static [&'static str] {
        &["headers", "signing_secret"]
    }

    fn check(&self, dest: &DestinationConfig, checks: &mut Checks) {
        checks.webhook_url(dest, &URL);
        let Some(s) = checks.options::<Settings>(dest) else {
            return;
        };
        for (name, value) in &s.headers {
            let key = format!("headers.{name}");
            if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
                checks.error(&key, "is not a valid header name");
            } else if RESERVED.contains(&name.to_ascii_lowercase().as_str()) {
                checks.error(&key, "is set by bizrelay and cannot be replaced");
            }
            if value.expose().is_empty() {
                checks.error(&key, "is empty (is its ${VARIABLE} set?)");
            } else if reqwest::header::HeaderValue::from_str(value.expose()).is_err() {
                checks.error(&key, "has characters a header value cannot carry");
            }
        }
        if let Some(secret) = &s.signing_secret {
            match secret_key(secret) {
                Err(reason) => checks.error("signing_secret", reason),
                Ok(key) if key.len() < MIN_SECRET_BYTES => checks.warn(
                    "signing_secret",
                    format!("is {} bytes; use {MIN_SECRET_BYTES} to 64", key.len()),
                ),
                Ok(_) => {}
            }
        }
    }

    /// The document is data, not markup: only JSON string escaping.
    fn escape_text(&self, s: &str) -> String {
        s.to_string()
    }

    fn builtins(&self, locale: Locale) -> &'static Builtins {
        &TEMPLATES[locale as usize]
    }

    fn fit_value(&self, body: &mut Value) -> Result<(), LimitError> {
        let obj = object(body, "webhook")?;
        if !obj.get("schema_version").is_some_and(Value::is_u64) {
            return Err(LimitError::Shape(
                "webhook document needs a numeric `schema_version`".into(),
            ));
        }
        shrink_to_bytes(body, MAX_BYTES);
        Ok(())
    }

    fn audit(&self, body: &Value, bytes: usize) -> Vec<String> {
        let mut out = Vec::new();
        if !body["schema_version"].is_u64() {
            out.push("no numeric `schema_version`".into());
        }
        if bytes > MAX_BYTES {
            out.push(format!("{bytes} bytes (budget {MAX_BYTES})"));
        }
        out
    }

    fn headline_fields(&self) -> &'static [&'static str] {
        &["/title", "/summary"]
    }

    fn fallback(&self, info: &FallbackInfo) -> String {
        let facts: serde_json::Map<String, Value> = info
            .facts
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        json!({"schema_version": SCHEMA_VERSION, "kind": "fallback", "summary": info.title,
            "facts": facts})
        .to_string()
    }

    fn request(
        &self,
        dest: &DestinationConfig,
        out: &Outgoing<'_>,
    ) -> Result<Request, RequestError> {
        let s = settings(dest)?;
        let mut extra: Vec<Header> = s
            .headers
            .iter()
            .map(|(k, v)| Header::secret(k, v.expose()))
            .collect();
        if let Some(secret) = &s.signing_secret {
            let key = secret_key(secret)
                .map_err(|reason| RequestError::Settings(format!("signing_secret {reason}")))?;
            extra.push(Header::new("webhook-id", out.id));
            extra.push(Header::new("webhook-timestamp", out.unix_time.to_string()));
            extra.push(Header::secret(
                "webhook-signature",
                signature(&key, out.id, out.unix_time, out.body),
            ));
        }
        request::json_post(dest, out, out.body.to_string(), extra)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dest(v: Value) -> DestinationConfig {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn signatures_match_the_standard_webhooks_test_vector() {
        let key = secret_key(&Secret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")).unwrap();
        assert_eq!(
            signature(
                &key,
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330,
                r#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn signed_requests_carry_the_three_headers_and_the_extra_ones() {
        let d = dest(json!({"type": "webhook", "url": "https://x.invalid/in",
            "signing_secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "headers": {"X-Api-Key": "KEY123"}}));
        let out = Outgoing {
            id: "42",
            body: r#"{"schema_version":1}"#,
            unix_time: 1_800_000_000,
        };
        let Request::Http(r) = KIND.request(&d, &out).unwrap() else {
            panic!()
        };
        assert_eq!(r.header("webhook-id"), Some("42"));
        assert_eq!(r.header("webhook-timestamp"), Some("1800000000"));
        assert_eq!(r.header("x-bizrelay-delivery"), Some("42"));
        assert_eq!(r.header("x-api-key"), Some("KEY123"));
        let key = secret_key(&Secret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")).unwrap();
        assert_eq!(
            r.header("webhook-signature"),
            Some(signature(&key, "42", 1_800_000_000, out.body).as_str())
        );
        let shown = format!("{r:?} {d:?}");
        assert!(
            !shown.contains("KEY123") && !shown.contains("MfKQ9r8G"),
            "{shown}"
        );
        assert!(!shown.contains(&signature(&key, "42", 1_800_000_000, out.body)[3..]));
        // Unsigned: no signature headers.
        let plain = dest(json!({"type": "webhook", "url": "https://x.invalid/in"}));
        let Request::Http(r) = KIND.request(&plain, &out).unwrap() else {
            panic!()
        };
        assert_eq!(r.header("webhook-signature"), None);
    }

    #[test]
    fn settings_are_checked_without_quoting_values() {
        let bad = Checks::of(&dest(
            json!({"type": "webhook", "url": "https://x.invalid/in",
            "signing_secret": "notwhsec_SECRET", "headers": {"Bad Name": "SECRET1",
            "Content-Type": "text/plain", "X-Empty": "", "X-Newline": "a\nSECRET2"}}),
        ));
        let keys: Vec<&str> = bad.errors.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "headers.Bad Name",
                "headers.Content-Type",
                "headers.X-Empty",
                "headers.X-Newline",
                "signing_secret"
            ],
            "{bad:?}"
        );
        assert!(!format!("{bad:?}").contains("SECRET"));
        let short = Checks::of(&dest(
            json!({"type": "webhook", "url": "https://x.invalid/in",
            "signing_secret": "whsec_c2hvcnQ="}),
        ));
        assert!(
            short.errors.is_empty() && short.warnings.len() == 1,
            "{short:?}"
        );
        let not_b64 = Checks::of(&dest(
            json!({"type": "webhook", "url": "https://x.invalid/in",
            "signing_secret": "whsec_!!!"}),
        ));
        assert_eq!(not_b64.errors.len(), 1);
    }

    #[test]
    fn documents_need_a_schema_version_and_fit_the_budget() {
        let mut big = json!({"schema_version": 1, "data": {"x": "y".repeat(MAX_BYTES)}});
        KIND.fit_value(&mut big).unwrap();
        assert!(KIND.audit(&big, big.to_string().len()).is_empty());
        assert!(KIND.fit_value(&mut json!({"data": 1})).is_err());
        assert!(
            KIND.violations(&KIND.fallback(&FallbackInfo::default()))
                .is_empty()
        );
    }
}
