//! Request bodies from bytes in memory, handed to the connection in
//! slices so the progress bars (and `--limit-rate`) follow the bytes as
//! they leave, not when a whole part is done.

use super::progress::FileProgress;
use bytes::Bytes;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// How much of a body is handed over at a time.
const SLICE: usize = 256 * 1024;

/// A body for `data` that counts what it hands over in `sent` and on the
/// bars. The caller sets `Content-Length` (presigned requests sign it).
pub fn counted(data: Bytes, progress: &FileProgress, sent: &Arc<AtomicU64>) -> reqwest::Body {
    if data.is_empty() {
        return reqwest::Body::from(data);
    }
    let progress = progress.clone();
    let sent = Arc::clone(sent);
    let slices = futures::stream::iter(slices(data));
    let stream = futures::StreamExt::then(slices, move |slice| {
        let progress = progress.clone();
        let sent = Arc::clone(&sent);
        async move {
            let n = slice.len() as u64;
            progress.pace(n).await;
            progress.add(n);
            sent.fetch_add(n, Ordering::Relaxed);
            Ok::<_, std::io::Error>(slice)
        }
    });
    reqwest::Body::wrap_stream(stream)
}

/// `data` cut into [`SLICE`]-sized pieces without copying.
fn slices(data: Bytes) -> Vec<Bytes> {
    (0..data.len())
        .step_by(SLICE)
        .map(|start| data.slice(start..(start + SLICE).min(data.len())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_cover_the_data() {
        let data = Bytes::from(vec![7u8; SLICE * 2 + 5]);
        let s = slices(data.clone());
        assert_eq!(
            s.iter().map(Bytes::len).collect::<Vec<_>>(),
            vec![SLICE, SLICE, 5]
        );
        assert!(slices(Bytes::new()).is_empty());
    }
}
