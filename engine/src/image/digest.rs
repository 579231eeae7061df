//! Digests, parsed strictly before one is ever used as a file name.

use std::fmt;

use crate::error::{Error, Result};

/// A sha256 content digest (`sha256:<64 lowercase hex>`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Digest(String);

impl Digest {
    /// Parses `sha256:<hex>`; anything else (other algorithms, wrong length,
    /// uppercase, path characters) is refused.
    pub fn parse(s: &str) -> Result<Digest> {
        let hex = s
            .strip_prefix("sha256:")
            .ok_or_else(|| Error::Digest(s.to_string()))?;
        Digest::sha256_hex(hex).map_err(|_| Error::Digest(s.to_string()))
    }

    /// A digest from its 64 hex characters.
    pub fn sha256_hex(hex: &str) -> Result<Digest> {
        let ok = hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if ok {
            Ok(Digest(hex.to_string()))
        } else {
            Err(Error::Digest(hex.to_string()))
        }
    }

    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Digest {
        use sha2::{Digest as _, Sha256};
        let d = Sha256::digest(bytes);
        Digest(d.iter().map(|b| format!("{b:02x}")).collect())
    }

    /// The 64 hex characters: safe as a file name.
    pub fn hex(&self) -> &str {
        &self.0
    }

    /// The first 12 hex characters, as `docker images` shows ids.
    pub fn short(&self) -> &str {
        &self.0[..12]
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_strict_sha256_digests_parse() {
        let good = format!("sha256:{}", "a".repeat(64));
        assert!(Digest::parse(&good).is_ok());
        for bad in [
            "sha256:../../../../tmp/x".to_string(),
            format!("sha512:{}", "a".repeat(128)),
            format!("md5:{}", "a".repeat(32)),
            format!("sha256:{}", "A".repeat(64)),
            format!("sha256:{}", "a".repeat(63)),
            format!("sha256:{}/", "a".repeat(63)),
            "sha256:".to_string(),
        ] {
            assert!(Digest::parse(&bad).is_err(), "{bad}");
        }
    }
}
