//! Writing the input file so that a reader sees either nothing or the whole file.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::Framing;

/// What ended up on disk.
#[derive(Debug, Clone)]
pub struct WrittenInput {
    pub path: PathBuf,
    pub bytes: u64,
    pub sha256: [u8; 32],
}

struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Writes `payload` framed to a temporary file next to `path`, syncs it and renames it into
/// place. On any error the temporary file is removed and `path` is left as it was.
pub fn write_atomic(path: &Path, framing: Framing, payload: &[u8]) -> io::Result<WrittenInput> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name =
        path.file_name().ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "output path has no file name"))?;
    let tmp = dir.join(format!(".{}.tmp-{}", name.to_string_lossy(), std::process::id()));
    let result = (|| {
        let file = File::create(&tmp)?;
        let mut w = HashingWriter { inner: BufWriter::with_capacity(1 << 20, file), hasher: Sha256::new(), bytes: 0 };
        framing.write_to(&mut w, payload)?;
        w.flush()?;
        let HashingWriter { inner, hasher, bytes } = w;
        inner.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        fs::rename(&tmp, path)?;
        // Make the rename itself durable; not every filesystem supports syncing a directory.
        if let Ok(d) = File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(WrittenInput { path: path.to_path_buf(), bytes, sha256: hasher.finalize().into() })
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_hashes_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("input.bin");
        let written = write_atomic(&path, Framing::Framed, b"hello").unwrap();
        let on_disk = fs::read(&path).unwrap();
        assert_eq!(written.bytes, on_disk.len() as u64);
        assert_eq!(written.sha256, <[u8; 32]>::from(Sha256::digest(&on_disk)));
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn failure_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing-dir").join("input.bin");
        assert!(write_atomic(&path, Framing::Raw, b"x").is_err());
        assert!(!path.exists());
    }
}
