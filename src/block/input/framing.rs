//! How the input file is laid out for a given ZisK version.
//!
//! ZisK v0.14/v0.15 read the file as the raw payload; v0.16 and later read a sequence of frames,
//! each a little-endian u64 length, the bytes, and zero padding to a multiple of 8.

use std::fmt;
use std::io::{self, Write};
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    Raw,
    Framed,
}

impl Framing {
    pub fn as_str(self) -> &'static str {
        match self {
            Framing::Raw => "raw",
            Framing::Framed => "framed",
        }
    }

    /// The framing a ZisK release reads, from its `major.minor`.
    pub fn for_zisk_version(major: u64, minor: u64) -> Framing {
        if major == 0 && minor < 16 { Framing::Raw } else { Framing::Framed }
    }

    /// Size of the file holding a payload of `len` bytes.
    pub fn file_len(self, len: usize) -> u64 {
        match self {
            Framing::Raw => len as u64,
            Framing::Framed => 8 + len.next_multiple_of(8) as u64,
        }
    }

    /// The payload inside a file written in this framing, if the file is well formed.
    pub fn payload(self, file: &[u8]) -> Option<&[u8]> {
        match self {
            Framing::Raw => Some(file),
            Framing::Framed => {
                let len = u64::from_le_bytes(file.get(..8)?.try_into().ok()?) as usize;
                let payload = file.get(8..8usize.checked_add(len)?)?;
                (file.len() == 8 + len.next_multiple_of(8)).then_some(payload)
            }
        }
    }

    /// Writes `payload` in this framing; the caller owns buffering and atomicity.
    pub fn write_to<W: Write>(self, w: &mut W, payload: &[u8]) -> io::Result<()> {
        match self {
            Framing::Raw => w.write_all(payload),
            Framing::Framed => {
                w.write_all(&(payload.len() as u64).to_le_bytes())?;
                w.write_all(payload)?;
                let pad = payload.len().next_multiple_of(8) - payload.len();
                w.write_all(&[0u8; 8][..pad])
            }
        }
    }
}

impl fmt::Display for Framing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Framing {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "raw" => Ok(Framing::Raw),
            "framed" => Ok(Framing::Framed),
            other => Err(format!("unknown framing {other:?}: expected `raw` (ZisK v0.14/v0.15) or `framed` (v0.16+)")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        Framing::Framed.write_to(&mut out, payload).unwrap();
        out
    }

    #[test]
    fn frame_is_length_payload_and_padding() {
        assert_eq!(framed(b"abc"), [3, 0, 0, 0, 0, 0, 0, 0, b'a', b'b', b'c', 0, 0, 0, 0, 0]);
        assert_eq!(framed(&[7; 8]).len(), 16);
        assert_eq!(framed(&[]), [0; 8]);
        for len in 0..20 {
            assert_eq!(framed(&vec![1; len]).len() as u64, Framing::Framed.file_len(len));
        }
    }

    #[test]
    fn payload_reads_a_frame_back() {
        let file = framed(b"hello");
        assert_eq!(Framing::Framed.payload(&file), Some(&b"hello"[..]));
        assert_eq!(Framing::Framed.payload(&file[..10]), None);
        assert_eq!(Framing::Framed.payload(b"abc"), None);
        assert_eq!(Framing::Raw.payload(b"abc"), Some(&b"abc"[..]));
    }

    #[test]
    fn raw_is_the_payload() {
        let mut out = Vec::new();
        Framing::Raw.write_to(&mut out, b"abc").unwrap();
        assert_eq!(out, b"abc");
    }

    #[test]
    fn version_table() {
        assert_eq!(Framing::for_zisk_version(0, 14), Framing::Raw);
        assert_eq!(Framing::for_zisk_version(0, 15), Framing::Raw);
        assert_eq!(Framing::for_zisk_version(0, 16), Framing::Framed);
        assert_eq!(Framing::for_zisk_version(0, 18), Framing::Framed);
        assert_eq!(Framing::for_zisk_version(1, 4), Framing::Framed);
    }

    #[test]
    fn parse_names() {
        assert_eq!("raw".parse::<Framing>(), Ok(Framing::Raw));
        assert!("zstd".parse::<Framing>().unwrap_err().contains("raw"));
    }
}
