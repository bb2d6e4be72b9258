//! Signed webhook deliveries: a receiver can tell a delivery from callscribe from a forgery,
//! and a fresh one from a replay.
//!
//! Each attempt carries two headers: [`TIMESTAMP_HEADER`], the Unix time in seconds when it
//! was sent, and [`SIGNATURE_HEADER`], `v1=` and the hex HMAC-SHA256, keyed with the shared
//! secret, of the timestamp, a `.`, and the exact body bytes. A receiver recomputes the HMAC
//! over what it received, compares in constant time, and rejects a timestamp more than a few
//! minutes from its own clock; within that window it de-duplicates on `segment_id`, which it
//! must do anyway (delivery is at least once). The timestamp is taken per attempt, so a
//! segment retried after an outage is signed afresh. The secret is read from a file
//! (`signing_secret_file`), never from the configuration itself.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::path::Path;

pub const TIMESTAMP_HEADER: &str = "x-callscribe-timestamp";
pub const SIGNATURE_HEADER: &str = "x-callscribe-signature";
/// Shorter secrets are refused: the HMAC is only as strong as its key.
const MIN_SECRET_BYTES: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("{path}: cannot read the webhook signing secret: {source}")]
    Read {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: the webhook signing secret is {len} bytes; use at least {MIN_SECRET_BYTES} random bytes")]
    Short {
        path: std::path::PathBuf,
        len: usize,
    },
}

/// Signs deliveries with one secret.
#[derive(Clone)]
pub struct Signer {
    secret: Vec<u8>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer { secret: <redacted> }")
    }
}

impl Signer {
    /// The secret is the file's contents without a trailing newline (as `echo` writes it).
    pub fn from_file(path: &Path) -> Result<Self, SignError> {
        let mut secret = std::fs::read(path).map_err(|source| SignError::Read {
            path: path.to_owned(),
            source,
        })?;
        while secret.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            secret.pop();
        }
        if secret.len() < MIN_SECRET_BYTES {
            return Err(SignError::Short {
                path: path.to_owned(),
                len: secret.len(),
            });
        }
        Ok(Self { secret })
    }

    /// The [`SIGNATURE_HEADER`] value for `body` sent at `unix_secs`.
    pub fn sign(&self, unix_secs: i64, body: &[u8]) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.secret).expect("HMAC takes a key of any length");
        mac.update(unix_secs.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        let tag: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("v1={tag}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_covers_the_timestamp_and_the_body_and_a_short_secret_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, "0123456789abcdef-secret\n").unwrap();
        let signer = Signer::from_file(&path).unwrap();
        let a = signer.sign(1_700_000_000, b"{\"x\":1}");
        assert!(a.starts_with("v1=") && a.len() == 3 + 64, "{a}");
        assert_ne!(a, signer.sign(1_700_000_001, b"{\"x\":1}"));
        assert_ne!(a, signer.sign(1_700_000_000, b"{\"x\":2}"));
        // The trailing newline is not part of the secret. (An independent HMAC checks the
        // construction in tests/it/forward.rs.)
        std::fs::write(&path, "0123456789abcdef-secret").unwrap();
        assert_eq!(
            Signer::from_file(&path)
                .unwrap()
                .sign(1_700_000_000, b"{\"x\":1}"),
            a
        );
        std::fs::write(&path, "short").unwrap();
        assert!(matches!(
            Signer::from_file(&path),
            Err(SignError::Short { len: 5, .. })
        ));
    }
}
