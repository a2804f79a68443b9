//! Which URL a lookup asks: built from the hook's `kakaoMessageType`, `requestId` and
//! `recipientSeq` under `enrich.base_url` (NHN's documented paths), or the hook's
//! `_links.self.href` when, and only when, its origin (scheme, host, port) is `base_url`'s.
//!
//! Invariant: the URL returned always has `base_url`'s origin, so the `X-Secret-Key` sent
//! with it cannot reach another host, whatever a hook says.

use url::Url;

/// The query API's product of a hook, from its `kakaoMessageType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Product {
    AlimtalkNormal,
    AlimtalkAuth,
    /// The answer wraps the message in `body`.
    AlimtalkMass,
    BrandMessage,
    FriendTalk,
}

impl Product {
    pub fn of(message_type: Option<&str>) -> Option<Product> {
        let t = message_type?;
        Some(match t {
            "ALIMTALK_NORMAL" => Product::AlimtalkNormal,
            "ALIMTALK_AUTH" => Product::AlimtalkAuth,
            "ALIMTALK_MASS" => Product::AlimtalkMass,
            _ if t.starts_with("BRAND_MESSAGE") => Product::BrandMessage,
            _ if t.starts_with("FRIENDTALK") => Product::FriendTalk,
            _ => return None,
        })
    }
}

/// Why no URL could be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    #[error("enrich.base_url is not a URL")]
    BadBase,
    #[error("the hook's kakaoMessageType is missing or not one the query API knows")]
    UnknownProduct,
}

/// The URL to ask for one message.
pub fn lookup_url(
    base: &str,
    app_key: &str,
    message_type: Option<&str>,
    request_id: &str,
    recipient_seq: i64,
    href: Option<&str>,
) -> Result<Url, EndpointError> {
    let base = Url::parse(base).map_err(|_| EndpointError::BadBase)?;
    if let Some(href) = href.and_then(|h| same_origin(&base, h)) {
        return Ok(href);
    }
    let product = Product::of(message_type).ok_or(EndpointError::UnknownProduct)?;
    let seq = recipient_seq.to_string();
    let segments: Vec<&str> = match product {
        Product::AlimtalkNormal => vec![
            "alimtalk", "v2.3", "appkeys", app_key, "messages", request_id, &seq,
        ],
        Product::AlimtalkAuth => vec![
            "alimtalk", "v2.3", "appkeys", app_key, "auth", "messages", request_id, &seq,
        ],
        Product::AlimtalkMass => vec![
            "alimtalk",
            "v2.3",
            "appkeys",
            app_key,
            "mass-messages",
            request_id,
            "recipients",
            &seq,
        ],
        Product::BrandMessage => vec![
            "brand-message",
            "v1.0",
            "appkeys",
            app_key,
            "messages",
            request_id,
            &seq,
        ],
        Product::FriendTalk => vec![
            "friendtalk",
            "v2.4",
            "appkeys",
            app_key,
            "messages",
            request_id,
            &seq,
        ],
    };
    let mut url = base;
    {
        // Each piece is pushed as one path segment, so a requestId holding `/` or `..`
        // cannot walk the path (it is percent-encoded).
        let mut path = url
            .path_segments_mut()
            .map_err(|_| EndpointError::BadBase)?;
        path.pop_if_empty();
        for s in segments {
            path.push(s);
        }
    }
    Ok(url)
}

/// The href as a URL if its origin equals `base`'s (scheme, host and port, default ports
/// filled in); else None, and it is not followed.
pub fn same_origin(base: &Url, href: &str) -> Option<Url> {
    let url = Url::parse(href).ok()?;
    let same = url.scheme() == base.scheme()
        && url.host_str().map(str::to_ascii_lowercase)
            == base.host_str().map(str::to_ascii_lowercase)
        && url.port_or_known_default() == base.port_or_known_default()
        && url.username().is_empty()
        && url.password().is_none();
    same.then_some(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "https://kakaotalk-bizmessage.api.nhncloudservice.com";

    fn url(kind: &str, href: Option<&str>) -> String {
        lookup_url(BASE, "AK", Some(kind), "R1", 3, href)
            .map(|u| u.to_string())
            .unwrap_or_else(|e| e.to_string())
    }

    #[test]
    fn the_endpoint_follows_the_message_type() {
        assert_eq!(
            url("ALIMTALK_NORMAL", None),
            format!("{BASE}/alimtalk/v2.3/appkeys/AK/messages/R1/3")
        );
        assert_eq!(
            url("ALIMTALK_AUTH", None),
            format!("{BASE}/alimtalk/v2.3/appkeys/AK/auth/messages/R1/3")
        );
        assert_eq!(
            url("ALIMTALK_MASS", None),
            format!("{BASE}/alimtalk/v2.3/appkeys/AK/mass-messages/R1/recipients/3")
        );
        assert_eq!(
            url("BRAND_MESSAGE_NORMAL", None),
            format!("{BASE}/brand-message/v1.0/appkeys/AK/messages/R1/3")
        );
        assert_eq!(
            url("FRIENDTALK_NORMAL", None),
            format!("{BASE}/friendtalk/v2.4/appkeys/AK/messages/R1/3")
        );
        assert!(url("SMS", None).contains("kakaoMessageType"));
    }

    #[test]
    fn a_request_id_cannot_walk_the_path() {
        let u = lookup_url(BASE, "AK", Some("ALIMTALK_NORMAL"), "../../x?y#z", 1, None).unwrap();
        assert_eq!(
            u.host_str(),
            Some("kakaotalk-bizmessage.api.nhncloudservice.com")
        );
        assert!(
            u.path().starts_with("/alimtalk/v2.3/appkeys/AK/messages/"),
            "{u}"
        );
        assert!(u.query().is_none() && u.fragment().is_none(), "{u}");
    }

    #[test]
    fn an_href_is_followed_only_on_the_base_origin() {
        let own = format!("{BASE}/alimtalk/v2.3/appkeys/AK/mass-messages/R1/recipients/3?x=1");
        assert_eq!(url("ALIMTALK_NORMAL", Some(&own)), own);
        // Default port spelled out is the same origin.
        let port = "https://kakaotalk-bizmessage.api.nhncloudservice.com:443/p";
        assert!(url("ALIMTALK_NORMAL", Some(port)).ends_with("/p"));
        for foreign in [
            "https://evil.example/alimtalk/v2.3/appkeys/AK/messages/R1/3",
            "http://kakaotalk-bizmessage.api.nhncloudservice.com/x",
            "https://kakaotalk-bizmessage.api.nhncloudservice.com:8443/x",
            "https://kakaotalk-bizmessage.api.nhncloudservice.com.evil.example/x",
            "https://user@kakaotalk-bizmessage.api.nhncloudservice.com/x",
            "not a url",
        ] {
            assert_eq!(
                url("ALIMTALK_NORMAL", Some(foreign)),
                format!("{BASE}/alimtalk/v2.3/appkeys/AK/messages/R1/3"),
                "{foreign} must not be followed"
            );
        }
    }
}
