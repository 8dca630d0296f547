//! Uploads stored in place: over the fs store a tus upload appends to one
//! staging file and completes by a rename; no parts, no join.

use crate::append::{MIB, body, data, limit, open, read};
use crate::{fs_store, new_upload, parts_store};
use bytes::Bytes;
use chute_store::{ListOptions, MultipartStore};
use chute_tus::headers::{TusChecksumAlgorithm, UploadChecksum};
use chute_tus::write::APPEND_SEGMENT;
use chute_tus::{Append, Peek, Progress, TusStore, WriteError};
use sha2::{Digest as _, Sha256};
use std::io;
use std::sync::Arc;

/// Every file under the uploads directory of the test bucket.
fn upload_files(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let uploads = dir.join("buckets/uploads/uploads");
    for up in std::fs::read_dir(uploads).unwrap() {
        for f in std::fs::read_dir(up.unwrap().path()).unwrap() {
            out.push(f.unwrap().file_name().to_string_lossy().into_owned());
        }
    }
    out.sort();
    out
}

/// No limit, `Upload-Checksum` the SHA-256 of `digest_of`.
fn sha256(digest_of: &[u8]) -> Append {
    Append {
        limit: u64::MAX,
        checksum: Some(UploadChecksum {
            algorithm: TusChecksumAlgorithm::Sha256,
            digest: Sha256::digest(digest_of).to_vec(),
        }),
        parts_in_flight: 1,
        lease: None,
    }
}

#[tokio::test]
async fn patches_append_in_place_survive_a_restart_and_complete_by_rename() {
    let dir = tempfile::tempdir().unwrap();
    let store = fs_store(dir.path()).await;
    let all = data(13 * MIB + 17);
    let info = new_upload(&TusStore::new(store.clone()), "in1", Some(all.len() as u64)).await;
    let mut at = 0;
    for patch in all.chunks(3 * MIB + 1) {
        // A fresh TusStore each time: nothing is kept in memory.
        let tus = TusStore::new(store.clone());
        let progress = open(&tus, &info).await;
        assert_eq!(progress.offset(&info.plan), at as u64);
        let p = tus
            .append(&info, progress, body(patch, 64 * 1024 + 3), limit(all.len()))
            .await
            .unwrap();
        at += patch.len();
        assert_eq!((p.parts, p.tail.len(), p.appended), (0, 0, at as u64));
        // HEAD's view agrees, from metadata alone.
        match tus.peek(&info).await.unwrap() {
            Peek::Open(pos) => assert_eq!(pos.offset(&info.plan), at as u64),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        upload_files(dir.path()),
        ["append", "upload.json"],
        "no part files"
    );
    assert!(
        store.head(&info.key).await.is_err(),
        "nothing visible before completion"
    );
    let tus = TusStore::new(store.clone());
    let progress = open(&tus, &info).await;
    assert_eq!(tus.assemble(&info, &progress).await.unwrap(), all.len() as u64);
    assert_eq!(read(&store, &info).await, all);
    let meta = store.head(&info.key).await.unwrap();
    assert!(meta.etag.ends_with("-1"), "{}", meta.etag);
    assert_eq!(
        meta.headers.content_type.as_deref(),
        Some("application/octet-stream")
    );
    // Assembling again after a crash (upload gone, object there) is fine.
    assert_eq!(tus.assemble(&info, &progress).await.unwrap(), all.len() as u64);
    assert!(store.list_multipart_uploads("tmp/").await.unwrap().is_empty());
}

#[tokio::test]
async fn a_broken_body_keeps_what_arrived_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    let store = fs_store(dir.path()).await;
    let tus = TusStore::new(store.clone());
    let len = APPEND_SEGMENT as usize + 5 * MIB + 3;
    let info = new_upload(&tus, "in2", Some(2 * len as u64)).await;
    let bytes = data(len);
    let broken = futures::stream::iter(vec![
        Ok(Bytes::copy_from_slice(&bytes[..MIB])),
        // One chunk across the segment boundary: it is split, not lost.
        Ok(Bytes::copy_from_slice(&bytes[MIB..])),
        Err(io::Error::other("connection reset")),
    ]);
    let err = tus
        .append(&info, Progress::default(), broken, limit(2 * len))
        .await
        .unwrap_err();
    assert!(matches!(err, WriteError::Interrupted(_)), "{err}");
    let p = open(&tus, &info).await;
    assert_eq!((p.parts, p.appended), (0, len as u64));
    // The rest, then completion: byte-identical.
    let rest = data(len);
    let p = tus
        .append(&info, p, body(&rest, 4 * MIB), limit(2 * len))
        .await
        .unwrap();
    tus.assemble(&info, &p).await.unwrap();
    let mut want = bytes;
    want.extend_from_slice(&rest);
    assert_eq!(read(&store, &info).await, want);
}

#[tokio::test]
async fn a_checksum_mismatch_commits_nothing_and_its_bytes_are_cut() {
    let dir = tempfile::tempdir().unwrap();
    let store = fs_store(dir.path()).await;
    let tus = TusStore::new(store.clone());
    let info = new_upload(&tus, "in3", Some(10 * MIB as u64)).await;
    let first = data(2 * MIB);
    let p = tus
        .append(&info, open(&tus, &info).await, body(&first, MIB), sha256(&first))
        .await
        .unwrap();
    assert_eq!(p.appended, 2 * MIB as u64);
    // A longer body with a wrong digest: appended to the staging file,
    // never committed.
    let wrong = vec![0xEEu8; 5 * MIB];
    let err = tus
        .append(&info, p.clone(), body(&wrong, MIB), sha256(b"something else"))
        .await
        .unwrap_err();
    assert!(matches!(err, WriteError::ChecksumMismatch), "{err}");
    assert_eq!(open(&tus, &info).await, p, "the upload is as it was");
    // The next body starts at the committed offset; the wrong bytes go.
    let second = data(MIB + 9);
    let p = tus
        .append(&info, p, body(&second, MIB), sha256(&second))
        .await
        .unwrap();
    tus.assemble(&info, &p).await.unwrap();
    let mut want = first;
    want.extend_from_slice(&second);
    assert_eq!(read(&store, &info).await, want);
}

#[tokio::test]
async fn bytes_a_crash_left_past_the_commit_point_are_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let store = fs_store(dir.path()).await;
    let tus = TusStore::new(store.clone());
    let info = new_upload(&tus, "in4", Some(100)).await;
    let p = tus
        .append(&info, open(&tus, &info).await, body(&[1; 40], 7), limit(100))
        .await
        .unwrap();
    // A PATCH whose append landed but whose commit did not (a crash).
    let app = store.appendable().unwrap();
    let stored = app
        .append(
            &info.key,
            &info.multipart,
            40,
            chute_store::conformance::body(&[9; 50]),
        )
        .await
        .unwrap();
    assert_eq!(stored, 90);
    assert_eq!(open(&tus, &info).await, p, "the offset is what was committed");
    assert_eq!(p.offset(&info.plan), 40);
    let p = tus
        .append(&info, p, body(&[2; 60], 13), limit(100))
        .await
        .unwrap();
    tus.assemble(&info, &p).await.unwrap();
    let mut want = vec![1u8; 40];
    want.extend_from_slice(&[2; 60]);
    assert_eq!(read(&store, &info).await, want);
}

#[tokio::test]
async fn bodies_past_the_limit_keep_what_came_before() {
    let dir = tempfile::tempdir().unwrap();
    let store = fs_store(dir.path()).await;
    let tus = TusStore::new(store.clone());
    let info = new_upload(&tus, "in5", Some(10)).await;
    let err = tus
        .append(&info, Progress::default(), body(&[1; 11], 6), limit(10))
        .await
        .unwrap_err();
    assert!(matches!(err, WriteError::TooLong { limit: 10 }), "{err}");
    assert_eq!(open(&tus, &info).await.offset(&info.plan), 6);
}

#[tokio::test]
async fn an_upload_begun_in_parts_carries_on_in_parts() {
    let dir = tempfile::tempdir().unwrap();
    let all = data(12 * MIB + 5);
    let info = {
        let tus = TusStore::new(parts_store(dir.path()).await);
        let info = new_upload(&tus, "in6", Some(all.len() as u64)).await;
        tus.append(
            &info,
            Progress::default(),
            body(&all[..6 * MIB], MIB),
            limit(all.len()),
        )
        .await
        .unwrap();
        info
    };
    // The same data directory, now with appendable uploads (an upgrade).
    let store: Arc<dyn MultipartStore> = {
        let fs = chute_store::fs::FsStore::open(dir.path()).await.unwrap();
        Arc::new(
            fs.bucket(&chute_core::BucketName::parse("uploads").unwrap())
                .await
                .unwrap(),
        )
    };
    let tus = TusStore::new(store.clone());
    let p = open(&tus, &info).await;
    assert_eq!((p.parts, p.appended), (1, 0));
    let p = tus
        .append(&info, p, body(&all[6 * MIB..], MIB), limit(all.len()))
        .await
        .unwrap();
    assert_eq!((p.parts, p.appended), (2, 0), "still in parts");
    tus.assemble(&info, &p).await.unwrap();
    assert_eq!(read(&store, &info).await, all);
}

#[tokio::test]
async fn removal_and_empty_uploads_leave_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let store = fs_store(dir.path()).await;
    let tus = TusStore::new(store.clone());
    let empty = new_upload(&tus, "in7", Some(0)).await;
    let p = Progress {
        length: Some(0),
        ..Progress::default()
    };
    assert_eq!(tus.assemble(&empty, &p).await.unwrap(), 0);
    assert_eq!(read(&store, &empty).await, b"");
    tus.remove(&empty, false).await.unwrap();

    let abandoned = new_upload(&tus, "in8", None).await;
    tus.append(
        &abandoned,
        Progress::default(),
        body(&data(3 * MIB), MIB),
        limit(100 * MIB),
    )
    .await
    .unwrap();
    tus.remove(&abandoned, false).await.unwrap();
    assert!(store.list_multipart_uploads("").await.unwrap().is_empty());
    let left = store
        .list(&ListOptions {
            prefix: String::new(),
            ..ListOptions::default()
        })
        .await
        .unwrap();
    assert!(left.objects.is_empty(), "{:?}", left.objects);
    assert_eq!(
        std::fs::read_dir(dir.path().join("buckets/uploads/uploads"))
            .unwrap()
            .count(),
        0
    );
}
