//! A proof file, read once: the bytes that are verified are the bytes that are hashed, made
//! durable and (read back under the recorded SHA-256) sent. Opened without following a
//! symlink and refused unless it is a regular file, so nothing swapped in beside the prover's
//! output is read in its place.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use sha2::Digest;

/// Why a proof file cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ProofFileError {
    #[error("cannot open the proof {path}: {error}")]
    Open { path: String, error: std::io::Error },
    #[error("the proof {path} is not a regular file (a symlink or a device is never read as a proof)")]
    NotAFile { path: String },
    #[error("the proof {path} is {bytes} bytes, more than any proof can be ({cap})")]
    TooLarge { path: String, bytes: u64, cap: u64 },
    #[error("the proof {path} is empty")]
    Empty { path: String },
    #[error("cannot read the proof {path}: {error}")]
    Read { path: String, error: std::io::Error },
    #[error("cannot make the proof {path} durable: {error}")]
    Sync { path: String, error: std::io::Error },
}

/// The proof's bytes and the open file they were read from.
pub struct ProofFile {
    file: std::fs::File,
    pub bytes: Vec<u8>,
}

impl ProofFile {
    /// Reads the whole file at `path`, at most `cap` bytes, in one pass. Blocking.
    pub fn read(path: &Path, cap: u64) -> Result<ProofFile, ProofFileError> {
        let shown = || path.display().to_string();
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(path)
            .map_err(|error| match error.raw_os_error() {
                Some(libc::ELOOP) => ProofFileError::NotAFile { path: shown() },
                _ => ProofFileError::Open { path: shown(), error },
            })?;
        let meta = file.metadata().map_err(|error| ProofFileError::Read { path: shown(), error })?;
        if !meta.is_file() {
            return Err(ProofFileError::NotAFile { path: shown() });
        }
        if meta.len() > cap {
            return Err(ProofFileError::TooLarge { path: shown(), bytes: meta.len(), cap });
        }
        let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
        (&file)
            .take(cap.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(|error| ProofFileError::Read { path: shown(), error })?;
        let read = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
        if read > cap {
            return Err(ProofFileError::TooLarge { path: shown(), bytes: read, cap });
        }
        if bytes.is_empty() {
            return Err(ProofFileError::Empty { path: shown() });
        }
        Ok(ProofFile { file, bytes })
    }

    /// SHA-256 of the bytes read, hex.
    pub fn sha256(&self) -> String {
        hex::encode(sha2::Sha256::digest(&self.bytes))
    }

    /// fsyncs the file that was read and the two directories above it: the ledger may say
    /// `proved` only about bytes that survive a power cut. Returns the SHA-256 of the bytes.
    pub fn seal(&self, path: &Path) -> Result<String, ProofFileError> {
        let sync = |error| ProofFileError::Sync { path: path.display().to_string(), error };
        self.file.sync_all().map_err(sync)?;
        let mut dir = path.parent();
        for _ in 0..2 {
            let Some(d) = dir.filter(|d| !d.as_os_str().is_empty()) else { break };
            std::fs::File::open(d).and_then(|f| f.sync_all()).map_err(sync)?;
            dir = d.parent();
        }
        Ok(self.sha256())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_symlink_a_directory_an_empty_or_oversized_file_is_never_read_as_a_proof() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.bin");
        std::fs::write(&real, b"a proof").unwrap();
        let link = dir.path().join("proof.bin");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert!(matches!(ProofFile::read(&link, 1024), Err(ProofFileError::NotAFile { .. })), "a symlink is refused");
        assert!(matches!(ProofFile::read(dir.path(), 1024), Err(ProofFileError::NotAFile { .. })));
        std::fs::write(dir.path().join("empty.bin"), b"").unwrap();
        assert!(matches!(ProofFile::read(&dir.path().join("empty.bin"), 1024), Err(ProofFileError::Empty { .. })));
        assert!(matches!(ProofFile::read(&real, 3), Err(ProofFileError::TooLarge { bytes: 7, cap: 3, .. })));
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        assert!(matches!(ProofFile::read(&fifo, 1024), Err(ProofFileError::NotAFile { .. })), "a fifo never blocks us");
        let read = ProofFile::read(&real, 1024).unwrap();
        assert_eq!(read.bytes, b"a proof");
        assert_eq!(read.seal(&real).unwrap(), hex::encode(sha2::Sha256::digest(b"a proof")));
    }

    #[test]
    fn the_bytes_sealed_are_the_bytes_read_even_if_the_file_is_replaced_after() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("proof.bin");
        std::fs::write(&path, b"verified bytes").unwrap();
        let read = ProofFile::read(&path, 1024).unwrap();
        // Another file takes the name after the read: the digest recorded is of what was read,
        // so the Reporter's check against it refuses the newcomer.
        std::fs::write(dir.path().join("other.bin"), b"swapped bytes").unwrap();
        std::fs::rename(dir.path().join("other.bin"), &path).unwrap();
        assert_eq!(read.seal(&path).unwrap(), hex::encode(sha2::Sha256::digest(b"verified bytes")));
    }
}
