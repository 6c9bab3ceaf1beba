//! Strict parsing of the hex strings Ethereum JSON-RPC uses.
//!
//! Nodes are trusted to be well-formed but not assumed to be: a quantity must be `0x`-prefixed
//! and fit its type, and data must have an even number of digits. The deserializers borrow the
//! string from the input buffer where serde_json allows, so a multi-megabyte witness is decoded
//! straight into bytes without an intermediate `String` per entry.

use std::borrow::Cow;
use std::fmt;

use ethrex_common::{Bytes, U256};
use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};

/// Why a hex string from the node is refused; each names the text (abbreviated).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HexError {
    #[error("expected a 0x-prefixed hex string, got {0:?}")]
    NoPrefix(String),
    #[error("empty hex quantity \"0x\"")]
    EmptyQuantity,
    #[error("{text:?} is not a {kind} quantity{why}")]
    NotAQuantity { text: String, kind: &'static str, why: String },
    #[error("hex data {0:?} has an odd number of digits")]
    OddDigits(String),
    #[error("invalid hex data {text:?}{why}")]
    Invalid { text: String, why: String },
    #[error("expected {bytes} bytes of hex data, got {digits} digits in {text:?}")]
    WrongLength { bytes: usize, digits: usize, text: String },
}

fn strip_prefix(s: &str) -> Result<&str, HexError> {
    s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")).ok_or_else(|| HexError::NoPrefix(abbreviate(s).into()))
}

fn abbreviate(s: &str) -> Cow<'_, str> {
    if s.len() <= 24 {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(format!("{}…", &s[..s.char_indices().nth(24).map_or(s.len(), |(i, _)| i)]))
    }
}

/// Parses a JSON-RPC quantity (`0x0`, `0x1a`) into a `u64`.
pub fn parse_u64(s: &str) -> Result<u64, HexError> {
    let digits = strip_prefix(s)?;
    if digits.is_empty() {
        return Err(HexError::EmptyQuantity);
    }
    u64::from_str_radix(digits, 16).map_err(|e| HexError::NotAQuantity {
        text: abbreviate(s).into(),
        kind: "u64",
        why: format!(": {e}"),
    })
}

/// Parses a JSON-RPC quantity into a 256-bit integer.
pub fn parse_u256(s: &str) -> Result<U256, HexError> {
    let digits = strip_prefix(s)?;
    let not = |why: String| HexError::NotAQuantity { text: abbreviate(s).into(), kind: "256-bit", why };
    if digits.is_empty() || digits.len() > 64 {
        return Err(not(String::new()));
    }
    U256::from_str_radix(digits, 16).map_err(|e| not(format!(": {e:?}")))
}

/// Decodes `0x`-prefixed hex data into bytes.
pub fn parse_bytes(s: &str) -> Result<Vec<u8>, HexError> {
    let digits = strip_prefix(s)?;
    if digits.len() % 2 != 0 {
        return Err(HexError::OddDigits(abbreviate(s).into()));
    }
    // SIMD decoding: witnesses are megabytes of hex, and this is most of the JSON phase.
    hex_simd::decode_to_vec(digits).map_err(|_| HexError::Invalid { text: abbreviate(s).into(), why: String::new() })
}

/// Decodes fixed-size hex data (hashes, addresses, blooms).
pub fn parse_fixed<const N: usize>(s: &str) -> Result<[u8; N], HexError> {
    let digits = strip_prefix(s)?;
    if digits.len() != N * 2 {
        return Err(HexError::WrongLength { bytes: N, digits: digits.len(), text: abbreviate(s).into() });
    }
    let mut out = [0u8; N];
    hex::decode_to_slice(digits, &mut out)
        .map_err(|e| HexError::Invalid { text: abbreviate(s).into(), why: format!(": {e}") })?;
    Ok(out)
}

/// A string borrowed from the input when possible (serde_json copies only strings with escapes).
struct HexStr<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for HexStr<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(HexStr(<Cow<'a, str> as Deserialize>::deserialize(d)?))
    }
}

macro_rules! hex_field {
    ($name:ident, $ty:ty, $parse:expr) => {
        pub mod $name {
            use super::*;
            pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<$ty, D::Error> {
                let s = HexStr::deserialize(d)?;
                ($parse)(s.0.as_ref()).map_err(de::Error::custom)
            }
            #[allow(dead_code)]
            pub mod option {
                use super::*;
                pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<$ty>, D::Error> {
                    match Option::<HexStr>::deserialize(d)? {
                        None => Ok(None),
                        Some(s) => ($parse)(s.0.as_ref()).map(Some).map_err(de::Error::custom),
                    }
                }
            }
        }
    };
}

hex_field!(u64_quantity, u64, parse_u64);
hex_field!(u256_quantity, U256, parse_u256);
hex_field!(bytes, Bytes, |s: &str| parse_bytes(s).map(Bytes::from));
hex_field!(h256, ethrex_common::H256, |s: &str| parse_fixed::<32>(s).map(ethrex_common::H256));
hex_field!(address, ethrex_common::Address, |s: &str| parse_fixed::<20>(s).map(ethrex_common::H160));
hex_field!(bloom, ethrex_common::Bloom, |s: &str| parse_fixed::<256>(s).map(ethrex_common::Bloom));
hex_field!(nonce64, u64, |s: &str| parse_fixed::<8>(s).map(u64::from_be_bytes));

/// A list of hex data entries, each decoded as it is read.
pub mod bytes_list {
    use super::*;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Bytes>, D::Error> {
        struct ListVisitor;
        impl<'de> Visitor<'de> for ListVisitor {
            type Value = Vec<Bytes>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of 0x-prefixed hex strings")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<Bytes>, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(s) = seq.next_element::<HexStr>()? {
                    let bytes = parse_bytes(s.0.as_ref())
                        .map_err(|e| de::Error::custom(format!("entry {}: {e}", out.len())))?;
                    out.push(Bytes::from(bytes));
                }
                Ok(out)
            }
        }
        d.deserialize_seq(ListVisitor)
    }
}

/// A list of 32-byte hashes.
pub mod h256_list {
    use super::*;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<ethrex_common::H256>, D::Error> {
        let raw = Vec::<HexStr>::deserialize(d)?;
        raw.iter()
            .enumerate()
            .map(|(i, s)| {
                parse_fixed::<32>(s.0.as_ref())
                    .map(ethrex_common::H256)
                    .map_err(|e| de::Error::custom(format!("entry {i}: {e}")))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_must_be_prefixed_and_fit() {
        assert_eq!(parse_u64("0x0"), Ok(0));
        assert_eq!(parse_u64("0x1a"), Ok(26));
        assert!(parse_u64("1a").unwrap_err().to_string().contains("0x-prefixed"));
        assert!(parse_u64("0x").unwrap_err().to_string().contains("empty"));
        assert!(parse_u64("0x10000000000000000").is_err());
        assert!(parse_u64("0xzz").is_err());
        assert_eq!(parse_u256("0xff"), Ok(U256::from(255)));
        assert!(parse_u256(&format!("0x1{}", "0".repeat(64))).is_err());
    }

    #[test]
    fn data_must_have_whole_bytes() {
        assert_eq!(parse_bytes("0x"), Ok(vec![]));
        assert_eq!(parse_bytes("0x00ff"), Ok(vec![0, 255]));
        assert!(parse_bytes("0x0").unwrap_err().to_string().contains("odd number"));
        assert!(parse_fixed::<2>("0x001122").unwrap_err().to_string().contains("expected 2 bytes"));
    }
}
