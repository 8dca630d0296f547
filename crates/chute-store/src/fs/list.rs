//! Listing in S3 order by walking the object tree.
//!
//! A directory's entries are sorted by their decoded name, an object `N`
//! as `N` and a directory `N` as `N/`; since no name holds a `/`, this is
//! exactly the byte order of the keys below them, so the walk yields keys
//! in S3 order without collecting them. Subtrees wholly outside `prefix`
//! or at or before `start_after` are skipped unread, and a directory whose
//! path already holds the delimiter is emitted as one common prefix.
//!
//! # Cost
//!
//! The filesystem returns a directory's entries unordered, so each
//! directory the walk visits is read whole: a page costs
//! O(entries in the visited directories), plus sorting those after
//! `start_after` (entries at or before it are dropped before the sort),
//! however few keys the page returns. Paging through one directory of `n`
//! objects in pages of `m` therefore reads `n` names `n / m` times. Keys
//! spread over many prefixes (`2024/06/...`) keep every directory small.

use super::file::open_with_meta;
use super::path::{DIR_SUFFIX, OBJ_SUFFIX, decode_segment};
use crate::{ListOptions, ListResult, ObjectMeta, StoreError, StoreResult};
use std::io;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

/// The default and largest page size.
pub(crate) const DEFAULT_MAX_KEYS: usize = 1000;

struct Walker<'a> {
    prefix: &'a str,
    delimiter: Option<&'a str>,
    start_after: Option<&'a str>,
    max: usize,
    out: ListResult,
    count: usize,
    last: Option<String>,
    last_cp: Option<String>,
}

enum Entry {
    Object(String, PathBuf),
    Prefix(String),
}

/// The entries of `dir`, whose keys start with `above`, as (key or prefix
/// ending in `/`, is a directory, path) sorted by the first (blocking); an
/// empty list if `dir` is gone.
fn read_sorted(
    dir: &Path,
    above: &str,
    start_after: Option<&str>,
) -> StoreResult<Vec<(String, bool, PathBuf)>> {
    let read = match std::fs::read_dir(dir) {
        Ok(r) => r,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut entries: Vec<(String, bool, PathBuf)> = Vec::new();
    for entry in read {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let (stem, is_dir) = if let Some(s) = name.strip_suffix(DIR_SUFFIX) {
            (s, true)
        } else if let Some(s) = name.strip_suffix(OBJ_SUFFIX) {
            (s, false)
        } else {
            continue;
        };
        let Some(decoded) = decode_segment(stem) else {
            continue;
        };
        if decoded.is_empty() || decoded.contains('/') {
            continue;
        }
        let full = format!("{above}{decoded}{}", if is_dir { "/" } else { "" });
        // At or before `start_after`: an object, or a directory unless
        // `start_after` lies inside it. Dropped before the sort, so a page
        // deep into a large directory sorts only what follows it.
        if let Some(sa) = start_after
            && full.as_str() <= sa
            && !(is_dir && sa.starts_with(&full))
        {
            continue;
        }
        entries.push((full, is_dir, entry.path()));
    }
    entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    Ok(entries)
}

/// Lists the tree under `objects` (blocking).
pub(crate) fn list_blocking(objects: &Path, opts: &ListOptions) -> StoreResult<ListResult> {
    let max = match opts.max_keys {
        0 => DEFAULT_MAX_KEYS,
        n => n.min(DEFAULT_MAX_KEYS),
    };
    let mut w = Walker {
        prefix: &opts.prefix,
        delimiter: opts.delimiter.as_deref().filter(|d| !d.is_empty()),
        start_after: opts.start_after.as_deref(),
        max,
        out: ListResult::default(),
        count: 0,
        last: None,
        last_cp: None,
    };
    if let ControlFlow::Break(()) = w.walk(objects, "")? {
        w.out.next_start_after = w.last.take();
    }
    Ok(w.out)
}

impl Walker<'_> {
    fn common_prefix(&self, full: &str) -> Option<String> {
        let d = self.delimiter?;
        let rest = full.get(self.prefix.len()..)?;
        let i = rest.find(d)?;
        Some(full[..self.prefix.len() + i + d.len()].to_owned())
    }

    fn walk(&mut self, dir: &Path, above: &str) -> StoreResult<ControlFlow<()>> {
        let entries = read_sorted(dir, above, self.start_after)?;
        for (full, is_dir, path) in entries {
            if is_dir {
                if !(full.starts_with(self.prefix) || self.prefix.starts_with(&full)) {
                    continue;
                }
                if full.starts_with(self.prefix)
                    && let Some(cp) = self.common_prefix(&full)
                {
                    if self.emit(Entry::Prefix(cp))?.is_break() {
                        return Ok(ControlFlow::Break(()));
                    }
                    continue;
                }
                if self.walk(&path, &full)?.is_break() {
                    return Ok(ControlFlow::Break(()));
                }
            } else {
                if !full.starts_with(self.prefix) {
                    continue;
                }
                let entry = match self.common_prefix(&full) {
                    Some(cp) => Entry::Prefix(cp),
                    None => Entry::Object(full, path),
                };
                if self.emit(entry)?.is_break() {
                    return Ok(ControlFlow::Break(()));
                }
            }
        }
        Ok(ControlFlow::Continue(()))
    }

    fn emit(&mut self, entry: Entry) -> StoreResult<ControlFlow<()>> {
        match entry {
            Entry::Prefix(cp) => {
                if self.start_after.is_some_and(|sa| cp.as_str() <= sa)
                    || self.last_cp.as_deref() == Some(cp.as_str())
                {
                    return Ok(ControlFlow::Continue(()));
                }
                if self.count == self.max {
                    return Ok(ControlFlow::Break(()));
                }
                self.last_cp = Some(cp.clone());
                self.last = Some(cp.clone());
                self.out.common_prefixes.push(cp);
            }
            Entry::Object(key, path) => {
                let meta = match open_with_meta::<ObjectMeta>(&path) {
                    Ok((_, _, meta)) => meta,
                    // Deleted since we read the directory.
                    Err(StoreError::Io(e)) if e.kind() == io::ErrorKind::NotFound => {
                        return Ok(ControlFlow::Continue(()));
                    }
                    Err(e) => return Err(e),
                };
                if self.count == self.max {
                    return Ok(ControlFlow::Break(()));
                }
                self.last = Some(key);
                self.out.objects.push(meta);
            }
        }
        self.count += 1;
        Ok(ControlFlow::Continue(()))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn entries_at_or_before_start_after_are_dropped_before_sorting() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["a.o", "b.d", "b.o", "c.d", "d.o", "e.d"] {
            let path = dir.path().join(name);
            if name.ends_with(".d") {
                std::fs::create_dir(path).unwrap();
            } else {
                std::fs::write(path, b"").unwrap();
            }
        }
        let keys = |start_after| -> Vec<String> {
            read_sorted(dir.path(), "x/", start_after)
                .unwrap()
                .into_iter()
                .map(|e| e.0)
                .collect()
        };
        assert_eq!(keys(None), ["x/a", "x/b", "x/b/", "x/c/", "x/d", "x/e/"]);
        // `x/c/` stays: keys below it may follow `x/c/k`.
        assert_eq!(keys(Some("x/c/k")), ["x/c/", "x/d", "x/e/"]);
        assert_eq!(keys(Some("x/b")), ["x/b/", "x/c/", "x/d", "x/e/"]);
        assert_eq!(keys(Some("x/d")), ["x/e/"]);
        assert_eq!(keys(Some("w")), keys(None));
        assert_eq!(keys(Some("y")), Vec::<String>::new());
    }
}
