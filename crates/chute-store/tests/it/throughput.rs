//! Not a timed assertion: `cargo test --release -p chute-store --test it
//! throughput -- --ignored --nocapture` prints put throughput next to the
//! alternative design (tokio::fs::File writes with hashing inline).
use crate::support::test_store;
use bytes::Bytes;
use chute_store::conformance::key;
use chute_store::{ChecksumAlgorithm, PutOptions, Store};
use futures::StreamExt as _;
use std::time::Instant;
use tokio::io::AsyncWriteExt as _;

const CHUNK: usize = 64 * 1024;

fn chunks(total: usize) -> impl futures::Stream<Item = std::io::Result<Bytes>> + Send + 'static {
    let chunk = Bytes::from(vec![0x5au8; CHUNK]);
    futures::stream::iter((0..total / CHUNK).map(move |_| Ok(chunk.clone())))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement, run by hand in release mode"]
async fn put_throughput() {
    let mib: usize = std::env::var("CHUTE_PUT_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    let total = mib << 20;
    let t = test_store().await;
    for (label, algo) in [("md5", None), ("md5+crc32c", Some(ChecksumAlgorithm::Crc32c))] {
        let start = Instant::now();
        let opts = PutOptions {
            checksum_algorithm: algo,
            ..PutOptions::default()
        };
        t.bucket
            .put(&key("big"), chunks(total).boxed(), opts)
            .await
            .unwrap();
        let s = start.elapsed().as_secs_f64();
        println!("FsBucket::put ({label}) {mib} MiB: {:.0} MiB/s", mib as f64 / s);
    }
    // The alternative: tokio::fs::File, 1 MiB writes, hashing inline.
    let start = Instant::now();
    let path = t.root().join("tmp/alt");
    let mut f = tokio::fs::File::create(&path).await.unwrap();
    let mut hasher = chute_core::Hasher::new(&[]);
    let mut buf = Vec::with_capacity(1 << 20);
    let mut s = chunks(total);
    while let Some(c) = s.next().await {
        let c = c.unwrap();
        hasher.update(&c);
        buf.extend_from_slice(&c);
        if buf.len() >= 1 << 20 {
            f.write_all(&buf).await.unwrap();
            buf.clear();
        }
    }
    f.write_all(&buf).await.unwrap();
    f.sync_all().await.unwrap();
    let _ = hasher.finish();
    let s = start.elapsed().as_secs_f64();
    println!(
        "tokio::fs::File + inline MD5 {mib} MiB: {:.0} MiB/s",
        mib as f64 / s
    );
}
