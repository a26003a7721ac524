//! Standard Webhooks signatures: HMAC-SHA256 over `id.timestamp.body` with the endpoint's
//! secret, sent as `webhook-signature: v1,<base64>` next to `webhook-id` and
//! `webhook-timestamp`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};

use crate::error::{Error, Result};

/// The prefix of a secret's text form.
const PREFIX: &str = "whsec_";
/// The key length of a generated secret, in bytes.
const GENERATED_BYTES: usize = 32;
/// The shortest key accepted, in bytes (the spec asks for 24 to 64).
const MIN_BYTES: usize = 24;
/// The longest key accepted, in bytes.
const MAX_BYTES: usize = 64;

/// An endpoint's signing secret: `whsec_` and the base64 of 24 to 64 random bytes. Its
/// `Debug` never shows the key.
///
/// ```
/// use tenantry_webhooks::Secret;
///
/// let secret = Secret::generate();
/// let header = secret.sign("evt_1", 1_767_225_600, br#"{"type":"job.succeeded"}"#);
/// assert!(header.starts_with("v1,"));
/// assert!(secret.verify("evt_1", 1_767_225_600, br#"{"type":"job.succeeded"}"#, &header));
/// assert!(!secret.verify("evt_2", 1_767_225_600, br#"{"type":"job.succeeded"}"#, &header));
/// assert_eq!(format!("{secret:?}"), "Secret(\"whsec_…\")");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    key: Vec<u8>,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Secret").field(&"whsec_…").finish()
    }
}

impl Secret {
    /// A new random secret (32 bytes).
    #[must_use]
    pub fn generate() -> Self {
        Self {
            key: rand::random::<[u8; GENERATED_BYTES]>().to_vec(),
        }
    }

    /// A secret from its text form, `whsec_<base64>`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidSecret`] without the prefix, with text that is not base64, or with a key
    /// outside 24..=64 bytes.
    pub fn parse(text: &str) -> Result<Self> {
        let encoded = text.strip_prefix(PREFIX).ok_or(Error::InvalidSecret)?;
        let key = STANDARD.decode(encoded).map_err(|_| Error::InvalidSecret)?;
        if !(MIN_BYTES..=MAX_BYTES).contains(&key.len()) {
            return Err(Error::InvalidSecret);
        }
        Ok(Self { key })
    }

    /// The text form, `whsec_<base64>`, to hand the endpoint's owner (once).
    #[must_use]
    pub fn expose(&self) -> String {
        format!("{PREFIX}{}", STANDARD.encode(&self.key))
    }

    fn mac(&self, id: &str, timestamp: i64, body: &[u8]) -> Hmac<hmac_sha2::Sha256> {
        // An HMAC takes a key of any length: this cannot fail.
        let mut mac = <Hmac<hmac_sha2::Sha256> as KeyInit>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of every length"));
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    }

    /// The `webhook-signature` header value of a message: `v1,<base64 of the HMAC>`.
    #[must_use]
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let tag = self.mac(id, timestamp, body).finalize().into_bytes();
        format!("v1,{}", STANDARD.encode(tag))
    }

    /// Whether a `webhook-signature` header (one or more space-separated `v1,<base64>`) holds a
    /// valid signature of the message. Compared in constant time. (A receiver also checks that
    /// `timestamp` is recent, to refuse replays.)
    #[must_use]
    pub fn verify(&self, id: &str, timestamp: i64, body: &[u8], header: &str) -> bool {
        header.split(' ').any(|sig| {
            let Some(encoded) = sig.strip_prefix("v1,") else {
                return false;
            };
            let Ok(tag) = STANDARD.decode(encoded) else {
                return false;
            };
            self.mac(id, timestamp, body).verify_slice(&tag).is_ok()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks specification's reference libraries.
    #[test]
    fn signs_as_the_specification_does() {
        let secret = Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            secret.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1_614_265_330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn secrets_round_trip_and_bad_ones_are_refused() {
        let s = Secret::generate();
        assert_eq!(Secret::parse(&s.expose()).unwrap(), s);
        for bad in [
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "whsec_%%%",
            "whsec_AAAA",
        ] {
            assert!(Secret::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn any_of_several_signatures_verifies() {
        let s = Secret::generate();
        let good = s.sign("id", 1, b"x");
        assert!(s.verify("id", 1, b"x", &format!("v1,AAAA {good}")));
        assert!(!s.verify("id", 1, b"y", &good));
        assert!(!s.verify("id", 2, b"x", &good));
    }
}
