//! The query itself: one GET with `X-Secret-Key`, no redirects followed (a redirect could
//! carry the key elsewhere), bounded by `enrich.timeout`.

use std::time::Duration;

use crate::secret::Secret;

use super::answer::{self, Answer};

/// Builds the client for lookups.
pub fn client() -> Result<reqwest::Client, reqwest::Error> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("bizrelay/", env!("CARGO_PKG_VERSION")))
        .pool_idle_timeout(Duration::from_secs(90))
        .build()
}

/// Asks for one message. Transport failures are [`Answer::Transient`] with a reason that
/// names neither the URL nor the key.
pub async fn query(
    client: &reqwest::Client,
    url: url::Url,
    secret: &Secret,
    timeout: Duration,
    show_content: bool,
) -> Answer {
    let sent = client
        .get(url)
        .header("X-Secret-Key", secret.expose())
        .header("Content-Type", "application/json;charset=UTF-8")
        .timeout(timeout)
        .send()
        .await;
    let response = match sent {
        Ok(r) => r,
        Err(e) if e.is_timeout() => {
            return Answer::Transient(format!(
                "no answer within {}",
                humantime::format_duration(timeout)
            ));
        }
        Err(e) if e.is_connect() => return Answer::Transient("connection failed".into()),
        Err(_) => return Answer::Transient("request failed".into()),
    };
    let status = response.status().as_u16();
    if (300..400).contains(&status) {
        return Answer::NoData(format!(
            "NHN answered HTTP {status} (redirects are not followed)"
        ));
    }
    match response.bytes().await {
        Ok(body) => answer::read(status, &body, show_content),
        Err(_) => Answer::Transient(format!("NHN answered HTTP {status} but the body broke off")),
    }
}
