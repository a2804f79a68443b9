//! Who may post: the `X-Toast-Webhook-Signature` check and the `appKey` allow-list.
//!
//! NHN's "signature" is a plain shared string, not an HMAC: it is compared in constant time
//! against every accepted value (a list, so operators can rotate). Neither the expected nor the
//! received value ever appears in an error.
//!
//! Invariant: both sides are hashed (SHA-256) before the comparison, so the comparison always
//! runs over 32 bytes and its time tells neither the accepted value's length nor how much of a
//! guess was right.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The header NHN sends the signature in.
pub const SIGNATURE_HEADER: &str = "x-toast-webhook-signature";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    #[error("missing X-Toast-Webhook-Signature header")]
    MissingSignature,
    #[error("X-Toast-Webhook-Signature does not match any accepted value")]
    WrongSignature,
    #[error("appKey is not in the allow-list")]
    AppKeyNotAllowed,
}

/// Checks the signature header against the accepted values. An empty list accepts anything
/// (unsigned deployments are allowed, and warned about at startup).
pub fn verify_signature(header: Option<&[u8]>, accepted: &[String]) -> Result<(), VerifyError> {
    if accepted.is_empty() {
        return Ok(());
    }
    let got = fingerprint(header.ok_or(VerifyError::MissingSignature)?);
    // Check every candidate without short-circuiting, so timing does not reveal which matched.
    let matched = accepted
        .iter()
        .fold(subtle::Choice::from(0u8), |acc, want| {
            acc | fingerprint(want.as_bytes())[..].ct_eq(&got[..])
        });
    if bool::from(matched) {
        Ok(())
    } else {
        Err(VerifyError::WrongSignature)
    }
}

/// A fixed-length stand-in for a signature: `subtle`'s slice comparison returns early when the
/// lengths differ, which would tell an attacker the accepted value's length.
fn fingerprint(value: &[u8]) -> [u8; 32] {
    Sha256::digest(value).into()
}

/// Checks the envelope's `appKey` against the allow-list; an empty list allows every key.
pub fn verify_app_key(app_key: Option<&str>, allowed: &[String]) -> Result<(), VerifyError> {
    if allowed.is_empty() {
        return Ok(());
    }
    match app_key {
        Some(key) if allowed.iter().any(|a| a == key) => Ok(()),
        _ => Err(VerifyError::AppKeyNotAllowed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    type Case = (Option<&'static [u8]>, Result<(), VerifyError>);

    #[test]
    fn signature_table() {
        let accepted = list(&["s3cret-one", "s3cret-two"]);
        let cases: &[Case] = &[
            (Some(b"s3cret-one"), Ok(())),
            (Some(b"s3cret-two"), Ok(())),
            (None, Err(VerifyError::MissingSignature)),
            (Some(b""), Err(VerifyError::WrongSignature)),
            (Some(b"s3cret-onf"), Err(VerifyError::WrongSignature)),
            (Some(b"s3cret-on"), Err(VerifyError::WrongSignature)),
            (Some(b"s3cret-one "), Err(VerifyError::WrongSignature)),
            (Some(b"S3CRET-ONE"), Err(VerifyError::WrongSignature)),
        ];
        for (header, want) in cases {
            assert_eq!(&verify_signature(*header, &accepted), want, "{header:?}");
        }
    }

    #[test]
    fn comparisons_run_over_fixed_length_digests() {
        // Whatever the lengths, both sides of the comparison are 32 bytes.
        for value in [&b""[..], b"s", b"s3cret-one", &[b'x'; 10_000]] {
            assert_eq!(fingerprint(value).len(), 32);
        }
        assert_ne!(fingerprint(b"s3cret-one"), fingerprint(b"s3cret-on"));
        // Accepted values of different lengths are all still recognised, and a prefix or an
        // extension of one is not.
        let accepted = list(&["short", &"long".repeat(100)]);
        assert_eq!(verify_signature(Some(b"short"), &accepted), Ok(()));
        let long = "long".repeat(100);
        assert_eq!(verify_signature(Some(long.as_bytes()), &accepted), Ok(()));
        for wrong in ["shor", "shortt", &long[..399], &format!("{long}g")] {
            assert_eq!(
                verify_signature(Some(wrong.as_bytes()), &accepted),
                Err(VerifyError::WrongSignature),
                "{wrong}"
            );
        }
    }

    #[test]
    fn empty_list_accepts_unsigned_requests() {
        assert_eq!(verify_signature(None, &[]), Ok(()));
        assert_eq!(verify_signature(Some(b"anything"), &[]), Ok(()));
    }

    #[test]
    fn errors_do_not_carry_values() {
        let e = verify_signature(Some(b"guess"), &list(&["s3cret"])).unwrap_err();
        let msg = e.to_string();
        assert!(!msg.contains("guess") && !msg.contains("s3cret"), "{msg}");
    }

    #[test]
    fn app_key_allow_list() {
        let allowed = list(&["Xk2abcDEF9tq"]);
        assert_eq!(verify_app_key(Some("Xk2abcDEF9tq"), &allowed), Ok(()));
        assert_eq!(
            verify_app_key(Some("other"), &allowed),
            Err(VerifyError::AppKeyNotAllowed)
        );
        assert_eq!(
            verify_app_key(None, &allowed),
            Err(VerifyError::AppKeyNotAllowed)
        );
        assert_eq!(verify_app_key(None, &[]), Ok(()));
    }
}
