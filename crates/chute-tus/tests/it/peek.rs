//! HEAD and the reaper learn an upload's offset from metadata alone: the
//! tail's body (up to a part, hundreds of MiB for huge uploads) is read
//! only by a writer holding the upload's lock.

use crate::Counting;
use chute_tus::{Append, Peek, TusStore};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

#[tokio::test]
async fn peek_reads_no_tail_body() {
    let dir = tempfile::tempdir().unwrap();
    peek_reads_no_tail_body_over(dir.path(), false).await;
    let dir = tempfile::tempdir().unwrap();
    peek_reads_no_tail_body_over(dir.path(), true).await;
}

/// Over the fs store in parts, or stored in place (`append`).
async fn peek_reads_no_tail_body_over(dir: &std::path::Path, append: bool) {
    let counting = Arc::new(Counting {
        inner: crate::fs_store(dir).await,
        tail_gets: AtomicUsize::new(0),
        append,
    });
    let tus = TusStore::new(counting.clone());
    let info = crate::new_upload(&tus, "peeked", Some(20 * 1024 * 1024)).await;
    let body = futures::stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::from(vec![
        7u8;
        6 * 1024 * 1024
    ]))]);
    let progress = match tus.status(&info).await.unwrap() {
        chute_tus::Status::Open(p) => p,
        other => panic!("{other:?}"),
    };
    tus.append(
        &info,
        progress,
        body,
        Append {
            limit: u64::MAX,
            checksum: None,
            parts_in_flight: 1,
            lease: None,
        },
    )
    .await
    .unwrap();
    let before = counting.tail_gets.load(Ordering::SeqCst);
    match tus.peek(&info).await.unwrap() {
        Peek::Open(p) => {
            assert_eq!(p.offset(&info.plan), 6 * 1024 * 1024);
            assert_eq!(p.length, Some(20 * 1024 * 1024));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        counting.tail_gets.load(Ordering::SeqCst),
        before,
        "no tail body read"
    );
}
