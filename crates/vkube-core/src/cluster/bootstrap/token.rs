//! kubeadm bootstrap tokens: `[a-z0-9]{6}.[a-z0-9]{16}`, made from
//! caller-given random bytes.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::super::pki::RandomSource;

const ALPHABET: &[u8; 36] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// A kubeadm bootstrap token, `abcdef.0123456789abcdef`. Secret.
#[derive(Clone, PartialEq, Eq)]
pub struct BootstrapToken {
    id: String,
    secret: String,
}

impl BootstrapToken {
    /// The token whose 22 characters are the base-36 digits of the 256-bit
    /// number `bytes`: 36^22 < 2^114, so each digit is uniform to within
    /// 2^-142. Same bytes, same token.
    pub fn from_bytes(bytes: &[u8; 32]) -> BootstrapToken {
        let mut number = *bytes;
        let mut digits = String::with_capacity(22);
        for _ in 0..22 {
            // Long division of the big-endian number by 36.
            let mut remainder = 0u32;
            for byte in number.iter_mut() {
                let value = (remainder << 8) | u32::from(*byte);
                *byte = (value / 36) as u8;
                remainder = value % 36;
            }
            digits.push(ALPHABET[remainder as usize] as char);
        }
        BootstrapToken {
            id: digits[..6].to_owned(),
            secret: digits[6..].to_owned(),
        }
    }

    /// A new token from 32 bytes of `random`.
    pub fn generate(random: &mut dyn RandomSource) -> BootstrapToken {
        let mut bytes = [0u8; 32];
        random.fill_bytes(&mut bytes);
        BootstrapToken::from_bytes(&bytes)
    }

    /// The public part (6 characters), as in the `bootstrap-token-<id>` Secret.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The secret part (16 characters).
    pub fn secret(&self) -> &str {
        &self.secret
    }
}

impl fmt::Display for BootstrapToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.id, self.secret)
    }
}

impl fmt::Debug for BootstrapToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BootstrapToken({}.<secret>)", self.id)
    }
}

impl FromStr for BootstrapToken {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let valid = |part: &str, len: usize| {
            part.len() == len && part.bytes().all(|b| ALPHABET.contains(&b))
        };
        match text.split_once('.') {
            Some((id, secret)) if valid(id, 6) && valid(secret, 16) => Ok(BootstrapToken {
                id: id.to_owned(),
                secret: secret.to_owned(),
            }),
            _ => Err("is not a kubeadm bootstrap token (`[a-z0-9]{6}.[a-z0-9]{16}`)".into()),
        }
    }
}

impl Serialize for BootstrapToken {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for BootstrapToken {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_and_determinism() {
        let zero = BootstrapToken::from_bytes(&[0; 32]);
        assert_eq!(zero.to_string(), "aaaaaa.aaaaaaaaaaaaaaaa");
        let mut bytes = [0u8; 32];
        bytes[31] = 37; // 37 = 1*36 + 1
        assert_eq!(
            BootstrapToken::from_bytes(&bytes).to_string(),
            "bbaaaa.aaaaaaaaaaaaaaaa"
        );
        let token = BootstrapToken::from_bytes(&[0xa5; 32]);
        assert_eq!(token, BootstrapToken::from_bytes(&[0xa5; 32]));
        let text = token.to_string();
        assert_eq!(text.len(), 23);
        assert!(
            text.chars().enumerate().all(|(i, c)| if i == 6 {
                c == '.'
            } else {
                c.is_ascii_lowercase() || c.is_ascii_digit()
            }),
            "{text}"
        );
        assert_eq!(text.parse::<BootstrapToken>().unwrap(), token);
        assert!(!format!("{token:?}").contains(token.secret()));
        for bad in [
            "abcdef0123456789abcdef",
            "ABCDEF.0123456789abcdef",
            "abcde.0123456789abcdef",
            "abcdef.0123456789abcde_",
        ] {
            assert!(bad.parse::<BootstrapToken>().is_err(), "{bad}");
        }
    }

    #[test]
    fn generate_uses_the_source() {
        let mut source = |buf: &mut [u8]| buf.fill(7);
        assert_eq!(
            BootstrapToken::generate(&mut source),
            BootstrapToken::from_bytes(&[7; 32])
        );
    }
}
