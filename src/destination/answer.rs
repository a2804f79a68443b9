//! What came back from one post, and the HTTP rule most services classify it by.
//!
//! Invariant: [`classify`] is total and pure: every status (or none) has a verdict, and a
//! `Retry-After` is always clamped to `1s..=MAX_RETRY_AFTER`.

use std::time::{Duration, SystemTime};

use serde_json::Value;

/// The answer to one post: status (`None` when none came), headers, the start of the body,
/// and a short printable excerpt (or the transport error) for logs and dead-letter reasons.
#[derive(Debug, Clone, Default)]
pub struct Answer {
    pub status: Option<u16>,
    /// Names in lower case; values that are not text are left out.
    pub headers: Vec<(String, String)>,
    /// The first bytes of the body (enough for the JSON error bodies services send).
    pub body: String,
    pub detail: String,
}

impl Answer {
    /// No answer: the request was not sent, or nothing came back.
    pub fn none(detail: impl Into<String>) -> Answer {
        Answer {
            detail: detail.into(),
            ..Answer::default()
        }
    }

    /// A header's value (names compared without case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON, when it is.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_str(&self.body).ok()
    }
}

/// What to do after one attempt to post.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// 2xx: done.
    Delivered,
    /// 429: pause the whole destination for this long, then retry.
    Throttled(Duration),
    /// 408, 5xx except 501, timeouts, connection errors: retry with backoff.
    Retry,
    /// 400/413/422 and other 4xx: the body is wrong, resending it cannot help.
    DeadPayload,
    /// 401/403/404/410: the destination is broken or gone; tell the operator.
    DeadDestination,
}

/// Longest `Retry-After` honoured; longer values are clamped (a typo or hostile header must
/// not stall a destination for days).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(15 * 60);
/// Pause used for a 429 without a usable `Retry-After`.
pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(5);

/// The HTTP rule: classifies by status and `Retry-After`. `status` is `None` when no answer
/// came (timeout, connection error). Pure and table-tested.
pub fn classify(status: Option<u16>, retry_after: Option<&str>, now: SystemTime) -> Verdict {
    let Some(status) = status else {
        return Verdict::Retry;
    };
    match status {
        200..=299 => Verdict::Delivered,
        429 => Verdict::Throttled(parse_retry_after(retry_after, now)),
        408 => Verdict::Retry,
        501 => Verdict::DeadPayload,
        500..=599 => Verdict::Retry,
        401 | 403 | 404 | 410 => Verdict::DeadDestination,
        _ => Verdict::DeadPayload,
    }
}

/// [`classify`] applied to a whole answer: what services without quirks use.
pub fn classify_http(answer: &Answer, now: SystemTime) -> Verdict {
    classify(answer.status, answer.header("retry-after"), now)
}

/// `Retry-After` as seconds or an HTTP date, clamped to `1s..=MAX_RETRY_AFTER`.
pub fn parse_retry_after(value: Option<&str>, now: SystemTime) -> Duration {
    let Some(value) = value.map(str::trim) else {
        return DEFAULT_RETRY_AFTER;
    };
    let wait = if let Ok(secs) = value.parse::<u64>() {
        Duration::from_secs(secs)
    } else if let Ok(secs) = value.parse::<f64>()
        && secs.is_finite()
        && secs >= 0.0
    {
        Duration::from_secs_f64(secs.min(MAX_RETRY_AFTER.as_secs_f64()))
    } else if let Ok(at) = httpdate::parse_http_date(value) {
        at.duration_since(now).unwrap_or(Duration::ZERO)
    } else {
        DEFAULT_RETRY_AFTER
    };
    wait.clamp(Duration::from_secs(1), MAX_RETRY_AFTER)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_table() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let cases: &[(Option<u16>, Option<&str>, Verdict)] = &[
            (Some(200), None, Verdict::Delivered),
            (Some(202), None, Verdict::Delivered),
            (Some(204), None, Verdict::Delivered),
            (
                Some(429),
                Some("2"),
                Verdict::Throttled(Duration::from_secs(2)),
            ),
            (Some(429), None, Verdict::Throttled(DEFAULT_RETRY_AFTER)),
            (Some(408), None, Verdict::Retry),
            (Some(500), None, Verdict::Retry),
            (Some(502), None, Verdict::Retry),
            (Some(503), Some("30"), Verdict::Retry),
            (Some(504), None, Verdict::Retry),
            (Some(501), None, Verdict::DeadPayload),
            (Some(400), None, Verdict::DeadPayload),
            (Some(413), None, Verdict::DeadPayload),
            (Some(422), None, Verdict::DeadPayload),
            (Some(405), None, Verdict::DeadPayload),
            (Some(301), None, Verdict::DeadPayload),
            (Some(401), None, Verdict::DeadDestination),
            (Some(403), None, Verdict::DeadDestination),
            (Some(404), None, Verdict::DeadDestination),
            (Some(410), None, Verdict::DeadDestination),
            (None, None, Verdict::Retry),
        ];
        for (status, retry_after, want) in cases {
            assert_eq!(&classify(*status, *retry_after, now), want, "{status:?}");
            let answer = Answer {
                status: *status,
                headers: retry_after
                    .map(|v| vec![("retry-after".to_string(), v.to_string())])
                    .unwrap_or_default(),
                ..Answer::default()
            };
            assert_eq!(&classify_http(&answer, now), want, "{status:?}");
        }
    }

    #[test]
    fn retry_after_forms_and_clamping() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let date = httpdate::fmt_http_date(now + Duration::from_secs(90));
        let past = httpdate::fmt_http_date(now - Duration::from_secs(90));
        let cases = [
            (Some("2"), Duration::from_secs(2)),
            (Some(" 7 "), Duration::from_secs(7)),
            (Some("0"), Duration::from_secs(1)),
            (Some("1.5"), Duration::from_secs_f64(1.5)),
            (Some("86400"), MAX_RETRY_AFTER),
            (Some("-3"), DEFAULT_RETRY_AFTER),
            (Some("soon"), DEFAULT_RETRY_AFTER),
            (Some(date.as_str()), Duration::from_secs(90)),
            (Some(past.as_str()), Duration::from_secs(1)),
            (None, DEFAULT_RETRY_AFTER),
        ];
        for (value, want) in cases {
            assert_eq!(parse_retry_after(value, now), want, "{value:?}");
        }
    }

    #[test]
    fn headers_are_found_without_case() {
        let a = Answer {
            headers: vec![("retry-after".into(), "3".into())],
            body: "{\"a\":1}".into(),
            ..Answer::default()
        };
        assert_eq!(a.header("Retry-After"), Some("3"));
        assert_eq!(a.json().unwrap()["a"], 1);
        assert!(Answer::none("x").json().is_none());
    }
}
