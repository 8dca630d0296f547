//! `cargo bench -p chute-store --bench put_throughput` measures, in one
//! run, what bounds a put on this machine and how close `FsBucket::put`
//! comes to it:
//!
//! - raw write: 1 MiB `write_all` calls to a file, then fsync (the disk);
//! - MD5 only: hashing the same bytes in memory (the ETag S3 requires,
//!   inherently serial: one core's worth);
//! - `FsBucket::put` with MD5, and with MD5 + CRC32C.
//!
//! Size from `CHUTE_BENCH_MIB` (default 1024). Medians of 3 runs each.

use bytes::Bytes;
use chute_core::{BucketName, ChecksumAlgorithm, Hasher, ObjectKey};
use chute_store::fs::FsStore;
use chute_store::{PutOptions, Store};
use futures::StreamExt as _;
use std::io::Write as _;
use std::time::Instant;

const CHUNK: usize = 64 * 1024;
const RUNS: usize = 3;

fn body(total: usize) -> chute_store::ByteStream {
    let chunk = Bytes::from((0..CHUNK).map(|i| (i * 31 % 251) as u8).collect::<Vec<_>>());
    futures::stream::iter((0..total / CHUNK).map(move |_| Ok(chunk.clone()))).boxed()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mib: usize = std::env::var("CHUTE_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let total = mib << 20;
    let dir = tempfile::tempdir_in(std::env::var("CHUTE_BENCH_DIR").unwrap_or_else(|_| ".".into()))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let block: Vec<u8> = (0..1 << 20).map(|i| (i % 251) as u8).collect();
    let speed = |secs: f64| mib as f64 / secs;

    let raw = median(
        (0..RUNS)
            .map(|i| -> Result<f64, std::io::Error> {
                let path = dir.path().join(format!("raw{i}"));
                let start = Instant::now();
                let mut f = std::fs::File::create(&path)?;
                for _ in 0..mib {
                    f.write_all(&block)?;
                }
                f.sync_all()?;
                let s = speed(start.elapsed().as_secs_f64());
                std::fs::remove_file(&path)?;
                Ok(s)
            })
            .collect::<Result<_, _>>()?,
    );
    let md5 = median(
        (0..RUNS)
            .map(|_| {
                let start = Instant::now();
                let mut h = Hasher::new(&[]);
                for _ in 0..mib {
                    h.update(&block);
                }
                std::hint::black_box(h.finish());
                speed(start.elapsed().as_secs_f64())
            })
            .collect(),
    );
    let store = rt.block_on(FsStore::open(dir.path().join("store")))?;
    let bucket_name = BucketName::parse("bench")?;
    rt.block_on(store.create_bucket(&bucket_name))?;
    let bucket = rt.block_on(store.bucket(&bucket_name))?;
    let key = ObjectKey::parse("bench/object.bin")?;
    let put = |algorithm: Option<ChecksumAlgorithm>| -> Result<f64, chute_store::StoreError> {
        let mut runs = Vec::new();
        for _ in 0..RUNS {
            let opts = PutOptions {
                checksum_algorithm: algorithm,
                ..PutOptions::default()
            };
            let start = Instant::now();
            rt.block_on(bucket.put(&key, body(total), opts))?;
            runs.push(speed(start.elapsed().as_secs_f64()));
        }
        Ok(median(runs))
    };
    let put_md5 = put(None)?;
    let put_crc = put(Some(ChecksumAlgorithm::Crc32c))?;

    println!("| what ({mib} MiB, median of {RUNS}) | MiB/s | vs raw write | vs MD5 only |");
    println!("|---|---|---|---|");
    for (label, v) in [
        ("raw write + fsync", raw),
        ("MD5 only (in memory)", md5),
        ("FsBucket::put (MD5)", put_md5),
        ("FsBucket::put (MD5 + CRC32C)", put_crc),
    ] {
        println!("| {label} | {v:.0} | {:.2} | {:.2} |", v / raw, v / md5);
    }
    Ok(())
}
