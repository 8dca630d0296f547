#!/usr/bin/env python3
"""S3 endpoint ingest: Chute's embedded store vs s3s-fs vs Garage, same run.

One client for all (curl), one PutObject of a 1 GiB file (incompressible,
re-salted before every upload) with a presigned URL, to three S3
endpoints on this machine's disk, in turn, a freshly started server per
upload whose data is removed after it:

- Chute's embedded S3 listener over its fs store (`chute serve`,
  development mode): s3s 0.14.1 for the protocol, Chute's store beneath
  (MD5 for the ETag, CRC32C, fsync of every object);
- s3s-fs 0.14.1 (`cargo install s3s-fs --version 0.14.1 --features binary
  --locked`, into ~/.cache/chute/s3s-fs-0.14.1 once), the same s3s version
  over its own example file system (MD5 for the ETag; no fsync);
- Garage 2.5, single node (scripts/garage), its S3 API straight.

    curl -sS -T src.bin -H 'Expect:' 'http://127.0.0.1:PORT/BUCKET/bench.bin?X-Amz-...'

MiB/s is curl's time_total; peak RSS is the server's process tree (VmRSS
every 20 ms). No goal was set for this comparison; it places Chute's
store among the S3 servers a user could run instead.

Usage: bench/ingest [--runs 3] [--size-mib 1024]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib as b  # noqa: E402

S3S_FS_VERSION = "0.14.1"
S3S_FS_ROOT = b.CACHE / f"s3s-fs-{S3S_FS_VERSION}"
S3S_FS_BIN = S3S_FS_ROOT / "bin" / "s3s-fs"


def ensure_s3s_fs() -> Path:
    if not S3S_FS_BIN.exists():
        b.say(f"installing s3s-fs {S3S_FS_VERSION} into {S3S_FS_ROOT} (once; takes a while)")
        subprocess.run(["cargo", "install", "s3s-fs", "--version", S3S_FS_VERSION, "--features", "binary", "--locked",
                        "--root", str(S3S_FS_ROOT)], check=True)
    return S3S_FS_BIN


def put(url: str, src: Path) -> float:
    out = subprocess.run(["curl", "-sS", "--max-time", "1800", "-H", "Expect:", "-o", "/dev/stderr",
                          "-w", "%{http_code} %{time_total}", "-T", str(src), url], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"curl -T {url.split('?')[0]}: {out.stderr.strip()[:500]}")
    code, secs = out.stdout.split()
    if code != "200":
        raise RuntimeError(f"PUT {url.split('?')[0]} answered {code}: {out.stderr[:500]}")
    return float(secs)


class GarageProc:
    """A single-node Garage started for one upload, shaped like b.Proc."""

    def __init__(self, d: Path):
        self.garage = b.Garage(d / "garage")
        self.pid = self.garage.pid

    def stop(self) -> None:
        self.garage.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--size-mib", type=int, default=1024)
    args = ap.parse_args()
    b.exit_on_sigterm()
    binary = b.measured_binary()
    s3s_fs = ensure_s3s_fs()
    base_dir = Path(os.environ.get("BENCH_DIR", tempfile.gettempdir()))
    work = Path(tempfile.mkdtemp(prefix="chute-bench-ingest-", dir=base_dir))
    src = work / "src.bin"
    b.make_source(src, args.size_mib * b.MiB)
    urls: dict[str, str] = {}  # url -> presigned PUT, filled by each start

    def start_chute(d: Path, _g) -> tuple[b.Proc, str]:
        p, _ = b.start_chute(binary, d, "chute")
        url = b.presign("PUT", p.s3_url, "uploads", "bench.bin", b.CHUTE_ACCESS, b.CHUTE_SECRET, "us-east-1")
        urls[p.s3_url] = url
        return p, p.s3_url

    def start_s3s(d: Path, _g) -> tuple[b.Proc, str]:
        port = b.free_port()
        (d / "root" / "uploads").mkdir(parents=True)  # s3s-fs: a bucket is a directory under the root
        p = b.Proc("s3s-fs", [str(s3s_fs), "--host", "127.0.0.1", "--port", str(port), "--access-key", b.CHUTE_ACCESS,
                              "--secret-key", b.CHUTE_SECRET, str(d / "root")], d, env={"RUST_LOG": "warn"})
        b.wait_port(port, p.proc, "s3s-fs", p.log)
        base = f"http://127.0.0.1:{port}"
        urls[base] = b.presign("PUT", base, "uploads", "bench.bin", b.CHUTE_ACCESS, b.CHUTE_SECRET, "us-east-1")
        return p, base

    def start_garage(d: Path, _g) -> tuple[GarageProc, str]:
        p = GarageProc(d)
        g = p.garage
        urls[g.endpoint] = b.presign("PUT", g.endpoint, g.bucket, "bench.bin", g.access_key, g.secret_key, g.region)
        return p, g.endpoint

    contenders = [
        b.Contender("chute", "Chute embedded S3 listener (fs store)", start_chute, lambda u: put(urls[u], src)),
        b.Contender("s3s-fs", f"s3s-fs {S3S_FS_VERSION}", start_s3s, lambda u: put(urls[u], src)),
        b.Contender("garage", "Garage 2.5 (single node)", start_garage, lambda u: put(urls[u], src)),
    ]
    try:
        out = b.run_contenders(contenders, args.runs, args.size_mib, work, [src])
        print(f"\nPutObject of {args.size_mib} MiB (curl -T, presigned URL) to each S3 endpoint, median of {args.runs} "
              "runs; peak RSS is the server's process tree, worst run; every upload has a freshly started server.\n")
        print("| server | MiB/s | runs (MiB/s) | peak RSS (MiB) | RSS at start (MiB) | Chute / this |")
        print("|---|---:|---|---:|---:|---:|")
        chute = out.results["chute"]
        for c in contenders:
            xs = out.results[c.key]
            if not xs:
                print(f"| {c.label} | failed | | {out.peaks[c.key] / 1024:.1f} | {out.idle[c.key] / 1024:.1f} | n/a |")
                continue
            ratio = f"{b.median(chute) / b.median(xs):.2f}x" if chute else "n/a"
            print(f"| {c.label} | {b.median(xs):.0f} | {', '.join(f'{x:.0f}' for x in xs)} | "
                  f"{out.peaks[c.key] / 1024:.1f} | {out.idle[c.key] / 1024:.1f} | {ratio} |")
        print()
        print("- no goal was set for this comparison; Chute's store fsyncs every object, s3s-fs does not")
        b.print_notes([], out.failures, out.loads)
    finally:
        b.rm_rf(work)


if __name__ == "__main__":
    main()
