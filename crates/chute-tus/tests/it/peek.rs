//! HEAD and the reaper learn an upload's offset from metadata alone: the
//! tail's body (up to a part, hundreds of MiB for huge uploads) is read
//! only by a writer holding the upload's lock.

use async_trait::async_trait;
use chute_core::ObjectKey;
use chute_store::*;
use chute_tus::{Append, Peek, TusStore};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A store that counts reads of tus tails.
#[derive(Debug)]
struct Counting {
    inner: Arc<dyn MultipartStore>,
    tail_gets: AtomicUsize,
}

#[async_trait]
impl Store for Counting {
    async fn put(&self, key: &ObjectKey, body: ByteStream, opts: PutOptions) -> StoreResult<ObjectMeta> {
        self.inner.put(key, body, opts).await
    }
    async fn get(&self, key: &ObjectKey, range: Option<ByteRange>) -> StoreResult<GetResult> {
        if key.as_str().ends_with("/tail") {
            self.tail_gets.fetch_add(1, Ordering::SeqCst);
        }
        self.inner.get(key, range).await
    }
    async fn head(&self, key: &ObjectKey) -> StoreResult<ObjectMeta> {
        self.inner.head(key).await
    }
    async fn delete(&self, key: &ObjectKey) -> StoreResult<()> {
        self.inner.delete(key).await
    }
    async fn list(&self, opts: &ListOptions) -> StoreResult<ListResult> {
        self.inner.list(opts).await
    }
    async fn copy(&self, from: &ObjectKey, to: &ObjectKey, opts: CopyOptions) -> StoreResult<ObjectMeta> {
        self.inner.copy(from, to, opts).await
    }
    fn capabilities(&self) -> StoreCapabilities {
        self.inner.capabilities()
    }
}

#[async_trait]
impl MultipartStore for Counting {
    async fn create_multipart(&self, key: &ObjectKey, opts: PutOptions) -> StoreResult<MultipartUpload> {
        self.inner.create_multipart(key, opts).await
    }
    async fn upload_part(
        &self,
        key: &ObjectKey,
        upload_id: &str,
        part_number: u32,
        body: ByteStream,
        opts: PartOptions,
    ) -> StoreResult<PartMeta> {
        self.inner
            .upload_part(key, upload_id, part_number, body, opts)
            .await
    }
    async fn list_parts(&self, key: &ObjectKey, upload_id: &str) -> StoreResult<Vec<PartMeta>> {
        self.inner.list_parts(key, upload_id).await
    }
    async fn complete_multipart(
        &self,
        key: &ObjectKey,
        upload_id: &str,
        parts: &[CompletedPart],
    ) -> StoreResult<ObjectMeta> {
        self.inner.complete_multipart(key, upload_id, parts).await
    }
    async fn abort_multipart(&self, key: &ObjectKey, upload_id: &str) -> StoreResult<()> {
        self.inner.abort_multipart(key, upload_id).await
    }
    async fn list_multipart_uploads(&self, prefix: &str) -> StoreResult<Vec<MultipartUpload>> {
        self.inner.list_multipart_uploads(prefix).await
    }
}

#[tokio::test]
async fn peek_reads_no_tail_body() {
    let dir = tempfile::tempdir().unwrap();
    let counting = Arc::new(Counting {
        inner: crate::fs_store(dir.path()).await,
        tail_gets: AtomicUsize::new(0),
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
