//! A file's fingerprint: what recognises "the same file" across runs, so
//! an interrupted upload resumes instead of starting over, wherever the
//! file was moved or however it is named on the command line.
//!
//! It is the SHA-256 of path-independent facts only:
//! `"chute-fingerprint-v1" | size (u64 BE) | mtime seconds (i64 BE) |
//! mtime nanoseconds (u32 BE) | the first MiB | the last MiB`.
//! Size and modification time catch almost every edit; the sampled bytes
//! catch a copy with a preserved mtime but different contents at either
//! end. Reading 2 MiB keeps it instant for any file size. An edit in the
//! middle that keeps size and mtime goes unnoticed here; the per-part
//! checksums still make the store refuse bytes that do not match what was
//! signed, and a file found changed during the upload is refused.

use chute_core::{ChecksumAlgorithm, ChecksumHasher};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt as _;
use std::time::SystemTime;

/// How much of each end of the file the fingerprint reads.
pub const SAMPLE: u64 = 1024 * 1024;

/// The facts of a file a fingerprint is made of, and the fingerprint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    /// The file's size in bytes.
    pub size: u64,
    /// Its modification time as (seconds, nanoseconds) since the epoch.
    pub mtime: (i64, u32),
    /// Hex SHA-256 of the facts (see the module docs).
    pub hex: String,
}

impl Fingerprint {
    /// Fingerprints the open `file`.
    pub fn of(file: &File) -> io::Result<Self> {
        let meta = file.metadata()?;
        let size = meta.len();
        let mtime = mtime_of(&meta);
        let mut hasher = ChecksumHasher::new(ChecksumAlgorithm::Sha256);
        hasher.update(b"chute-fingerprint-v1");
        hasher.update(&size.to_be_bytes());
        hasher.update(&mtime.0.to_be_bytes());
        hasher.update(&mtime.1.to_be_bytes());
        let head = SAMPLE.min(size);
        hasher.update(&read_exact_at(file, 0, head)?);
        let tail_start = size.saturating_sub(SAMPLE).max(head);
        hasher.update(&read_exact_at(file, tail_start, size - tail_start)?);
        Ok(Self {
            size,
            mtime,
            hex: hex::encode(hasher.finish().value),
        })
    }

    /// Whether `file` still has this fingerprint's size and mtime (cheap;
    /// checked before completing an upload).
    pub fn still_matches(&self, file: &File) -> io::Result<bool> {
        let meta = file.metadata()?;
        Ok(meta.len() == self.size && mtime_of(&meta) == self.mtime)
    }
}

fn mtime_of(meta: &std::fs::Metadata) -> (i64, u32) {
    let Ok(modified) = meta.modified() else {
        return (0, 0);
    };
    match modified.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => (i64::try_from(d.as_secs()).unwrap_or(i64::MAX), d.subsec_nanos()),
        Err(before) => {
            let d = before.duration();
            (-i64::try_from(d.as_secs()).unwrap_or(i64::MAX), d.subsec_nanos())
        }
    }
}

/// Reads exactly `len` bytes at `offset`.
pub fn read_exact_at(file: &File, offset: u64, len: u64) -> io::Result<Vec<u8>> {
    let len = usize::try_from(len).map_err(|_| io::Error::other("read larger than memory"))?;
    let mut buf = vec![0; len];
    file.read_exact_at(&mut buf, offset)?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    fn write(path: &std::path::Path, data: &[u8]) {
        std::fs::File::create(path).unwrap().write_all(data).unwrap();
    }

    fn set_mtime(path: &std::path::Path, secs: u64) {
        let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
        f.set_modified(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs))
            .unwrap();
    }

    #[test]
    fn independent_of_path_and_sensitive_to_contents() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.bin"), dir.path().join("elsewhere.bin"));
        let data: Vec<u8> = (0..3 * SAMPLE).map(|i| (i % 251) as u8).collect();
        write(&a, &data);
        write(&b, &data);
        set_mtime(&a, 1_700_000_000);
        set_mtime(&b, 1_700_000_000);
        let fa = Fingerprint::of(&File::open(&a).unwrap()).unwrap();
        let fb = Fingerprint::of(&File::open(&b).unwrap()).unwrap();
        assert_eq!(fa, fb, "same facts, different paths");
        assert_eq!(fa.size, 3 * SAMPLE);

        // Same size and mtime, last byte changed: a different fingerprint.
        let mut changed = data.clone();
        *changed.last_mut().unwrap() ^= 1;
        write(&b, &changed);
        set_mtime(&b, 1_700_000_000);
        assert_ne!(Fingerprint::of(&File::open(&b).unwrap()).unwrap(), fa);

        // Same bytes, another mtime: different too.
        write(&b, &data);
        set_mtime(&b, 1_700_000_001);
        let moved = Fingerprint::of(&File::open(&b).unwrap()).unwrap();
        assert_ne!(moved.hex, fa.hex);
        assert!(!fa.still_matches(&File::open(&b).unwrap()).unwrap());
        assert!(fa.still_matches(&File::open(&a).unwrap()).unwrap());
    }

    #[test]
    fn small_and_empty_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("e");
        write(&p, b"");
        let empty = Fingerprint::of(&File::open(&p).unwrap()).unwrap();
        assert_eq!((empty.size, empty.hex.len()), (0, 64));
        write(&p, b"x");
        set_mtime(&p, 5);
        let one = Fingerprint::of(&File::open(&p).unwrap()).unwrap();
        assert_eq!(one.size, 1);
        assert_ne!(one.hex, empty.hex);
    }
}
