//! Uploads in parts (the fs store without its appendable uploads, as
//! over S3).

use crate::{new_upload, parts_store};
use bytes::Bytes;
use chute_store::{ListOptions, MultipartStore};
use chute_tus::headers::{TusChecksumAlgorithm, UploadChecksum};
use chute_tus::{Append, Progress, Status, TusStore, UploadInfo, WriteError};
use futures::TryStreamExt as _;
use sha2::{Digest as _, Sha256};
use std::io;
use std::sync::Arc;

pub(crate) const MIB: usize = 1024 * 1024;

pub(crate) fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

/// `bytes` as a body of `chunk`-byte pieces.
pub(crate) fn body(
    bytes: &[u8],
    chunk: usize,
) -> futures::stream::Iter<std::vec::IntoIter<Result<Bytes, io::Error>>> {
    let pieces: Vec<Result<Bytes, io::Error>> = bytes
        .chunks(chunk.max(1))
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    futures::stream::iter(pieces)
}

pub(crate) async fn open(tus: &TusStore, info: &UploadInfo) -> Progress {
    match tus.status(info).await.unwrap() {
        Status::Open(p) => p,
        Status::Done(_) => panic!("upload is done"),
    }
}

pub(crate) async fn read(store: &Arc<dyn MultipartStore>, info: &UploadInfo) -> Vec<u8> {
    let got = store.get(&info.key, None).await.unwrap();
    got.body
        .try_fold(Vec::new(), |mut v, c| async move {
            v.extend_from_slice(&c);
            Ok(v)
        })
        .await
        .unwrap()
}

pub(crate) fn limit(len: usize) -> Append {
    // Three parts in flight, so the tests see parts finish out of order
    // and commit in order.
    Append {
        limit: len as u64,
        checksum: None,
        parts_in_flight: 3,
        lease: None,
    }
}

#[tokio::test]
async fn patches_become_parts_that_survive_a_restart_and_join_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let store = parts_store(dir.path()).await;
    let all = data(13 * MIB + 17);
    let info = new_upload(&TusStore::new(store.clone()), "up1", Some(all.len() as u64)).await;
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
        assert_eq!(p.offset(&info.plan), at as u64);
        assert!(p.tail.len() < 5 * MIB);
    }
    let tus = TusStore::new(store.clone());
    let progress = open(&tus, &info).await;
    assert_eq!(progress.parts, 2);
    assert_eq!(tus.assemble(&info, &progress).await.unwrap(), all.len() as u64);
    assert_eq!(read(&store, &info).await, all);
    // Assembling again after a crash (multipart gone, object there) is fine.
    assert_eq!(tus.assemble(&info, &progress).await.unwrap(), all.len() as u64);
}

#[tokio::test]
async fn a_broken_body_keeps_what_arrived() {
    let dir = tempfile::tempdir().unwrap();
    let store = parts_store(dir.path()).await;
    let tus = TusStore::new(store.clone());
    let info = new_upload(&tus, "up2", Some(20 * MIB as u64)).await;
    let bytes = data(6 * MIB + 5);
    let broken = futures::stream::iter(vec![
        Ok(Bytes::copy_from_slice(&bytes)),
        Err(io::Error::other("connection reset")),
    ]);
    let err = tus
        .append(&info, Progress::default(), broken, limit(20 * MIB))
        .await
        .unwrap_err();
    assert!(matches!(err, WriteError::Interrupted(_)), "{err}");
    let p = open(&tus, &info).await;
    assert_eq!((p.parts, p.offset(&info.plan)), (1, bytes.len() as u64));
    assert_eq!(&p.tail[..], &bytes[5 * MIB..]);
}

#[tokio::test]
async fn a_checksum_mismatch_keeps_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = parts_store(dir.path()).await;
    let tus = TusStore::new(store.clone());
    let info = new_upload(&tus, "up3", Some(8 * MIB as u64)).await;
    let bytes = data(7 * MIB);
    let wrong = Append {
        limit: 8 * MIB as u64,
        checksum: Some(UploadChecksum {
            algorithm: TusChecksumAlgorithm::Sha256,
            digest: Sha256::digest(b"something else").to_vec(),
        }),
        parts_in_flight: 3,
        lease: None,
    };
    let err = tus
        .append(&info, Progress::default(), body(&bytes, MIB), wrong)
        .await
        .unwrap_err();
    assert!(matches!(err, WriteError::ChecksumMismatch), "{err}");
    assert_eq!(
        open(&tus, &info).await,
        Progress {
            length: Some(8 * MIB as u64),
            ..Progress::default()
        }
    );
    let right = Append {
        limit: 8 * MIB as u64,
        checksum: Some(UploadChecksum {
            algorithm: TusChecksumAlgorithm::Sha256,
            digest: Sha256::digest(&bytes).to_vec(),
        }),
        parts_in_flight: 3,
        lease: None,
    };
    let p = tus
        .append(&info, Progress::default(), body(&bytes, MIB), right)
        .await
        .unwrap();
    assert_eq!(p.offset(&info.plan), bytes.len() as u64);
    assert_eq!(open(&tus, &info).await.offset(&info.plan), bytes.len() as u64);
}

#[tokio::test]
async fn bodies_past_the_limit_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = parts_store(dir.path()).await;
    let tus = TusStore::new(store.clone());
    let info = new_upload(&tus, "up4", Some(10)).await;
    let err = tus
        .append(&info, Progress::default(), body(&[1; 11], 11), limit(10))
        .await
        .unwrap_err();
    assert!(matches!(err, WriteError::TooLong { limit: 10 }), "{err}");
    assert_eq!(open(&tus, &info).await.offset(&info.plan), 0);
}

#[tokio::test]
async fn small_uploads_join_without_parts_and_removal_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = parts_store(dir.path()).await;
    let tus = TusStore::new(store.clone());
    let info = new_upload(&tus, "up5", Some(100)).await;
    let p = tus
        .append(&info, Progress::default(), body(&data(100), 7), limit(100))
        .await
        .unwrap();
    assert_eq!(p.parts, 0);
    tus.assemble(&info, &p).await.unwrap();
    assert_eq!(read(&store, &info).await, data(100));
    assert!(store.list_multipart_uploads("tmp/").await.unwrap().is_empty());

    let other = new_upload(&tus, "up6", None).await;
    tus.append(
        &other,
        Progress::default(),
        body(&data(6 * MIB), MIB),
        limit(100 * MIB),
    )
    .await
    .unwrap();
    assert_eq!(tus.list_ids(None, 10).await.unwrap().0, vec!["up5", "up6"]);
    tus.remove(&other, false).await.unwrap();
    tus.remove(&info, false).await.unwrap();
    assert!(store.list_multipart_uploads("tmp/").await.unwrap().is_empty());
    let left = store
        .list(&ListOptions {
            prefix: String::new(),
            ..ListOptions::default()
        })
        .await
        .unwrap();
    assert!(left.objects.is_empty(), "{:?}", left.objects);
    assert!(tus.info("up6").await.unwrap().is_none());
}

/// Seen on Garage 2.5 behind nginx (tests/python/test_cluster_faults.py):
/// an instance killed while its completion PUT of a small upload streamed
/// to the store left the multipart upload gone (Garage dropped it with the
/// cut-off PUT) and no object. The tail holds every byte of an upload with
/// no full part, so completing again puts the object from it.
#[tokio::test]
async fn a_small_upload_whose_multipart_upload_vanished_completes_from_its_tail() {
    let dir = tempfile::tempdir().unwrap();
    let store = parts_store(dir.path()).await;
    let tus = TusStore::new(store.clone());
    let all = data(300 * 1024 + 7);
    let info = new_upload(&tus, "up-vanished", Some(all.len() as u64)).await;
    let p = tus
        .append(
            &info,
            Progress::default(),
            body(&all, 64 * 1024),
            limit(all.len()),
        )
        .await
        .unwrap();
    assert_eq!((p.parts, p.offset(&info.plan)), (0, all.len() as u64));
    store.abort_multipart(&info.key, &info.multipart).await.unwrap();
    let progress = open(&tus, &info).await;
    assert_eq!(tus.assemble(&info, &progress).await.unwrap(), all.len() as u64);
    assert_eq!(read(&store, &info).await, all);
}
