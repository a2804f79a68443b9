//! Slack through the Web API with a bot token (`chat.postMessage`, `chat.update`), so a
//! template's review keeps one thread: a root message that always shows the current status,
//! and replies with what changed ([`thread`] plans them; `deliver::thread` sends them).
//! Message results, digests and unknown events are plain `chat.postMessage` posts.
//!
//! Invariants:
//! - The token is a [`Secret`], sent only as `Authorization: Bearer …` (marked sensitive).
//! - Bodies are Slack's (`text` + `blocks`), escaped and fitted exactly as for the `slack`
//!   type, with `*`, `~` and `` ` `` from untrusted text defused as well (a reviewer cannot
//!   format the thread); `channel`, `ts`, `thread_ts` and `reply_broadcast` are added at send
//!   time, never by a template.
//! - [`answer::classify`] alone decides what a Web API answer means.

pub mod answer;
pub mod thread;

use serde::Deserialize;
use serde_json::Value;

use super::config::http_url;
use super::slack::fit;
use super::{
    Answer, Builtins, ChatService, Checks, DestinationConfig, DestinationKind, FallbackInfo,
    Header, HttpRequest, LimitError, Outgoing, Request, RequestError, Verdict, builtins,
    request::{DELIVERY_HEADER, JSON},
};
use crate::locale::Locale;
use crate::secret::Secret;

pub use answer::{ApiOutcome, Method};

pub struct SlackBot;
pub const KIND: DestinationKind = DestinationKind::of(&SlackBot);

/// Where the Web API lives unless `api_url` says otherwise.
pub const DEFAULT_API_URL: &str = "https://slack.com/api";

static TEMPLATES: [Builtins; 2] = builtins!("slack_bot");

/// The thread templates, besides the four every service has.
static THREAD_TEMPLATES: [[(&str, &str); 3]; 2] = [
    [
        (
            thread::ROOT,
            include_str!("../../templates/slack_bot/en/thread_root.hbs"),
        ),
        (
            thread::REPLY,
            include_str!("../../templates/slack_bot/en/thread_reply.hbs"),
        ),
        (
            thread::BROADCAST,
            include_str!("../../templates/slack_bot/en/thread_broadcast.hbs"),
        ),
    ],
    [
        (
            thread::ROOT,
            include_str!("../../templates/slack_bot/ko/thread_root.hbs"),
        ),
        (
            thread::REPLY,
            include_str!("../../templates/slack_bot/ko/thread_reply.hbs"),
        ),
        (
            thread::BROADCAST,
            include_str!("../../templates/slack_bot/ko/thread_broadcast.hbs"),
        ),
    ],
];

/// The destination's settings as written.
#[derive(Debug, Default, Deserialize)]
struct Settings {
    #[serde(default)]
    token: Option<Secret>,
    #[serde(default)]
    channel: Option<String>,
    #[serde(default)]
    api_url: Option<String>,
}

/// What a `slack_bot` destination needs to call the Web API.
#[derive(Debug, Clone)]
pub struct Bot {
    pub token: Secret,
    pub channel: String,
    /// Without a trailing `/`.
    pub api_url: String,
}

impl Bot {
    /// Reads a destination's settings (already checked by `check` at load time).
    pub fn of(dest: &DestinationConfig) -> Result<Bot, RequestError> {
        let s: Settings = dest
            .options
            .parse()
            .map_err(|(k, reason)| RequestError::Settings(format!("{k}: {reason}")))?;
        let token = s
            .token
            .filter(|t| !t.expose().is_empty())
            .ok_or_else(|| RequestError::Settings("token: not set".into()))?;
        let channel = s
            .channel
            .filter(|c| !c.is_empty())
            .ok_or_else(|| RequestError::Settings("channel: not set".into()))?;
        let api_url = s
            .api_url
            .unwrap_or_else(|| DEFAULT_API_URL.into())
            .trim_end_matches('/')
            .to_string();
        Ok(Bot {
            token,
            channel,
            api_url,
        })
    }

    /// The POST of `body` (a JSON object) to one Web API method.
    pub fn request(&self, method: Method, id: &str, body: String) -> HttpRequest {
        HttpRequest {
            url: Secret::new(format!("{}/{}", self.api_url, method.path())),
            headers: vec![
                Header::new("Content-Type", JSON),
                Header::new(DELIVERY_HEADER, id),
                Header::secret("Authorization", format!("Bearer {}", self.token.expose())),
            ],
            body,
        }
    }
}

/// What `chat.postMessage` or `chat.update` is sent: the rendered body with where it goes.
/// `ts` names the message to update; `thread_ts` the root a reply belongs to.
pub fn addressed(
    body: &str,
    channel: &str,
    ts: Option<&str>,
    thread_ts: Option<&str>,
    broadcast: bool,
) -> String {
    let mut v: Value = serde_json::from_str(body).unwrap_or_else(|_| serde_json::json!({}));
    if let Some(obj) = v.as_object_mut() {
        obj.insert("channel".into(), channel.into());
        for key in ["ts", "thread_ts", "reply_broadcast"] {
            obj.remove(key);
        }
        if let Some(ts) = ts {
            obj.insert("ts".into(), ts.into());
            // chat.update keeps blocks that are left out; an update always says them all.
            obj.entry("blocks")
                .or_insert_with(|| Value::Array(Vec::new()));
        }
        if let Some(t) = thread_ts {
            obj.insert("thread_ts".into(), t.into());
            if broadcast {
                obj.insert("reply_broadcast".into(), true.into());
            }
        }
    }
    v.to_string()
}

/// Slack's mrkdwn escaping plus the formatting marks a reviewer could use to restyle the
/// thread: a zero-width space on both sides keeps `*`, `~` and `` ` `` from pairing up.
pub fn escape(s: &str) -> String {
    let escaped = crate::text::slack_escape(s);
    let mut out = String::with_capacity(escaped.len() + 8);
    for c in escaped.chars() {
        if matches!(c, '*' | '~' | '`') {
            out.push('\u{200B}');
            out.push(c);
            out.push('\u{200B}');
        } else {
            out.push(c);
        }
    }
    out
}

impl ChatService for SlackBot {
    fn name(&self) -> &'static str {
        "slack_bot"
    }

    fn settings(&self) -> &'static [&'static str] {
        &["token", "channel", "api_url"]
    }

    fn check(&self, dest: &DestinationConfig, checks: &mut Checks) {
        if dest.url.is_some() {
            checks.error(
                "url",
                "a slack_bot destination calls the Web API with `token` and `channel`; it takes no url (incoming webhooks cannot keep threads: use type = \"slack\" for those)",
            );
        }
        let Some(s) = checks.options::<Settings>(dest) else {
            return;
        };
        match &s.token {
            None => checks.error(
                "token",
                "a slack_bot destination needs the app's bot token (xoxb-…, with the chat:write scope)",
            ),
            Some(t) if t.expose().trim().is_empty() => {
                checks.error("token", "is empty (is its ${VARIABLE} set?)")
            }
            Some(t) if t.expose().chars().any(|c| c.is_whitespace() || c.is_control()) => {
                checks.error("token", "contains spaces or control characters")
            }
            Some(t) if !t.expose().starts_with("xoxb-") => checks.warn(
                "token",
                "does not start with xoxb- (a bot token is expected; user and app tokens behave differently)",
            ),
            Some(_) => {}
        }
        match s.channel.as_deref() {
            None | Some("") => checks.error(
                "channel",
                "a slack_bot destination needs the channel ID (C…, from the channel's details)",
            ),
            Some(c) if c.starts_with('#') || !is_channel_id(c) => checks.error(
                "channel",
                "must be a channel ID such as C0123456789 (chat.update refuses channel names); find it in the channel's details",
            ),
            Some(_) => {}
        }
        if let Some(api) = &s.api_url {
            match http_url(&Secret::new(api.clone())) {
                None => checks.error("api_url", "not a valid http(s) URL"),
                Some(u)
                    if u.scheme() == "http"
                        && !matches!(u.host_str(), Some("127.0.0.1" | "localhost" | "[::1]")) =>
                {
                    checks.error(
                        "api_url",
                        "must be https (the token travels with every call)",
                    )
                }
                Some(_) => {}
            }
        }
    }

    fn escape_text(&self, s: &str) -> String {
        escape(s)
    }

    fn builtins(&self, locale: Locale) -> &'static Builtins {
        &TEMPLATES[locale as usize]
    }

    fn extra_builtins(&self, locale: Locale) -> &'static [(&'static str, &'static str)] {
        &THREAD_TEMPLATES[locale as usize]
    }

    fn fit_value(&self, body: &mut Value) -> Result<(), LimitError> {
        fit::fit(body)
    }

    fn audit(&self, body: &Value, bytes: usize) -> Vec<String> {
        super::slack::KIND.audit(body, bytes)
    }

    fn headline_fields(&self) -> &'static [&'static str] {
        &["/text", "/blocks/0/text/text"]
    }

    fn fallback(&self, info: &FallbackInfo) -> String {
        fit::fallback(info)
    }

    /// A plain `chat.postMessage` (message results, digests, unknown events); thread events
    /// are sent by `deliver::thread`, several calls each.
    fn request(
        &self,
        dest: &DestinationConfig,
        out: &Outgoing<'_>,
    ) -> Result<Request, RequestError> {
        let bot = Bot::of(dest)?;
        let body = addressed(out.body, &bot.channel, None, None, false);
        Ok(Request::Http(bot.request(Method::Post, out.id, body)))
    }

    fn classify(&self, answer: &Answer, now: std::time::SystemTime) -> Verdict {
        verdict(&answer::classify(Method::Post, answer, now))
    }

    fn explain(&self, answer: &Answer) -> String {
        match answer::classify(Method::Post, answer, std::time::SystemTime::now()) {
            ApiOutcome::Ok { .. } | ApiOutcome::Throttled(_) => answer.detail.clone(),
            ApiOutcome::Retry(why)
            | ApiOutcome::Gone(why)
            | ApiOutcome::DeadPayload(why)
            | ApiOutcome::DeadDestination(why) => why,
        }
    }
}

/// A Web API outcome as the sender's verdict (a `Gone` here has nothing to fall back to).
pub fn verdict(outcome: &ApiOutcome) -> Verdict {
    match outcome {
        ApiOutcome::Ok { .. } => Verdict::Delivered,
        ApiOutcome::Throttled(d) => Verdict::Throttled(*d),
        ApiOutcome::Retry(_) => Verdict::Retry,
        ApiOutcome::Gone(_) | ApiOutcome::DeadPayload(_) => Verdict::DeadPayload,
        ApiOutcome::DeadDestination(_) => Verdict::DeadDestination,
    }
}

/// `C…`, `G…` (private, older) or `D…` (a DM), then upper-case letters and digits.
fn is_channel_id(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some('C' | 'G' | 'D'))
        && s.len() >= 9
        && s.len() <= 24
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

#[cfg(test)]
mod tests;
