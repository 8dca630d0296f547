#!/usr/bin/env python3
"""tus 1.0 upload throughput: Chute vs rustus vs @tus/server, same run.

Uploads one 1 GiB file (incompressible, written once into a temp dir as
64 MiB chunk files, re-salted before every upload so no two uploads share a
block) with one client for every server: curl, a creation POST with
`Upload-Length`, then one PATCH per chunk with `Upload-Offset` and
`Content-Type: application/offset+octet-stream`:

    curl -X POST -H 'Tus-Resumable: 1.0.0' -H 'Upload-Length: 1073741824' \\
         -H 'Upload-Metadata: filename YmVuY2guYmlu,filetype ...' URL/files/
    curl -X PATCH -T chunk-NN -H 'Tus-Resumable: 1.0.0' -H 'Upload-Offset: N' \\
         -H 'Content-Type: application/offset+octet-stream' -H 'Expect:' LOCATION

Local store:  Chute (embedded fs store)   vs rustus 0.5.10 (file storage,
              --max-body-size = chunk size) vs @tus/server 2.4.5 + @tus/file-store
Garage:       Chute (store = "s3")         vs @tus/server + @tus/s3-store

Each run uploads once to each server, in turn, every upload to a freshly
started server whose data is removed afterwards, every run with a fresh
Garage; then boto3 sends the same bytes straight into that Garage (the
reference row: what Garage itself allows here). The table has the median
MiB/s of the runs and the peak RSS of each server's process tree (VmRSS
sampled every 20 ms) across its uploads.

Chute is CHUTE_BIN (default target/release/chute); if it is missing or has
no tus endpoint, the peers still run and the Chute rows say so.

Usage: bench/tus [--runs 3] [--size-mib 1024] [--chunk-mib 64] [--only local|garage]
"""

from __future__ import annotations

import argparse
import base64
import os
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib as b  # noqa: E402

TUS = "1.0.0"


def curl_head(args: list[str]) -> tuple[int, dict[str, str], str]:
    """Runs curl, returns (status, response headers lowercased, body)."""
    out = subprocess.run(["curl", "-sS", "--max-time", "300", "-D", "-", "-o", "/dev/stderr", *args], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"curl {' '.join(args)}: {out.stderr.strip()}")
    blocks = [blk for blk in out.stdout.replace("\r", "").split("\n\n") if blk.strip()]
    lines = blocks[-1].split("\n")  # the last header block (after any 100 Continue)
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    return status, headers, out.stderr


def tus_upload(base: str, chunks: list[Path], size: int) -> float:
    """One tus upload of the chunk files; returns seconds, POST to last PATCH."""
    meta = "filename " + base64.b64encode(b"bench.bin").decode() + ",filetype " + base64.b64encode(b"application/octet-stream").decode()
    t0 = time.monotonic()
    status, headers, body = curl_head(["-X", "POST", "-H", f"Tus-Resumable: {TUS}", "-H", f"Upload-Length: {size}",
                                       "-H", f"Upload-Metadata: {meta}", f"{base}/files/"])
    if status != 201 or "location" not in headers:
        raise RuntimeError(f"creation at {base}/files/ answered {status}: {headers} {body[:500]}")
    url = urllib.parse.urljoin(f"{base}/files/", headers["location"])
    offset = 0
    for chunk in chunks:
        n = chunk.stat().st_size
        t_patch = time.monotonic()
        status, headers, body = curl_head(["-X", "PATCH", "-T", str(chunk), "-H", f"Tus-Resumable: {TUS}",
                                           "-H", f"Upload-Offset: {offset}", "-H", "Content-Type: application/offset+octet-stream",
                                           "-H", "Expect:", url])
        offset += n
        if status != 204 or headers.get("upload-offset") != str(offset):
            raise RuntimeError(f"PATCH {url} at {offset - n} answered {status}: {headers} {body[:500]}")
    secs = time.monotonic() - t0
    if offset != size:
        raise RuntimeError(f"sent {offset} of {size} bytes")
    b.say(f"  {url}: {secs:.1f} s, of which the last PATCH (completion) {time.monotonic() - t_patch:.1f} s")
    return secs


def chute_has_tus(base: str) -> bool:
    status, headers = b.http_status("OPTIONS", f"{base}/files/", {"Tus-Resumable": TUS})
    return status in (200, 204) and "tus-version" in headers


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--chunk-mib", type=int, default=64)
    ap.add_argument("--only", choices=["local", "garage"])
    args = ap.parse_args()
    b.exit_on_sigterm()
    size, chunk = args.size_mib * b.MiB, args.chunk_mib * b.MiB

    rustus = b.ensure_rustus() if args.only != "garage" else None
    b.ensure_tus_peers()
    py = b.bench_python() if args.only != "local" else None  # boto3, for the Garage reference row
    binary = b.chute_bin()

    base_dir = Path(os.environ.get("BENCH_DIR", tempfile.gettempdir()))
    work = Path(tempfile.mkdtemp(prefix="chute-bench-tus-", dir=base_dir))
    chunks = []
    for i in range(0, size, chunk):
        p = work / f"chunk-{i // chunk:03}"
        b.make_source(p, min(chunk, size - i))
        chunks.append(p)

    node = ["node", str(b.TUS_PEERS / "server.mjs")]

    def start(target: str, name: str, d: Path, garage: b.Garage | None) -> tuple[b.Proc, str]:
        """A fresh server with its data in d (removed after its upload)."""
        if name == "chute":
            return b.start_chute(binary, d, "chute", env=garage.chute_env() if garage else None)
        port = b.free_port()
        if name == "rustus":
            argv = [str(rustus), "--host", "127.0.0.1", "--port", str(port), "--data-dir", str(d), "--info-dir", str(d),
                    "--max-body-size", str(chunk), "--log-level", "WARN"]
            p = b.Proc("rustus", argv, d)
        elif target == "local":
            p = b.Proc("tus-file", [*node, "file", str(port), str(d / "files")], d, env={"NODE_ENV": "production"})
            (d / "files").mkdir()
        else:
            p = b.Proc("tus-s3", [*node, "s3", str(port)], d, env=dict(garage.s3_env(), NODE_ENV="production"))
        b.wait_port(port, p.proc, f"{name} ({target})", p.log)
        return p, f"http://127.0.0.1:{port}"

    servers: list[tuple[str, str, str]] = []  # (target, name, label)
    notes = []
    if args.only != "garage":
        servers += [("local", "chute", "Chute (embedded fs store)"), ("local", "rustus", f"rustus {b.RUSTUS_VERSION} (file storage)"),
                    ("local", "tus-node", "@tus/server + @tus/file-store")]
    if args.only != "local":
        servers += [("garage", "chute", 'Chute (store = "s3")'), ("garage", "tus-node", "@tus/server + @tus/s3-store")]
    if not binary:
        notes.append("Chute not measured: no release binary (set CHUTE_BIN or build target/release/chute).")
        servers = [s for s in servers if s[1] != "chute"]
    else:
        (work / "probe").mkdir()
        p, url = start("local", "chute", work / "probe", None)
        if not chute_has_tus(url):
            notes.append(f"Chute not measured: {binary} answers no tus OPTIONS at /files/.")
            servers = [s for s in servers if s[1] != "chute"]
        p.stop()
        b.rm_rf(work / "probe")

    def reference(garage: b.Garage, key: str) -> float:
        """The ceiling: the same bytes straight into this run's Garage."""
        whole = work / "whole.bin"
        with open(whole, "wb") as f:
            for c in chunks:
                f.write(c.read_bytes())
        try:
            return b.garage_direct(py, garage, whole, key)
        finally:
            whole.unlink()

    contenders = [b.Contender(f"{t}-{n}", f"{label} ({t})", lambda d, g, t=t, n=n: start(t, n, d, g),
                              lambda url: tus_upload(url, chunks, size), garage=(t == "garage"))
                  for t, n, label in servers]
    try:
        out = b.run_contenders(contenders, args.runs, args.size_mib, work, chunks, reference if py else None)
        results = {(t, n): out.results[f"{t}-{n}"] for t, n, _ in servers}
        peaks = {(t, n): out.peaks[f"{t}-{n}"] for t, n, _ in servers}
        idle = {(t, n): out.idle[f"{t}-{n}"] for t, n, _ in servers}
        loads, failures, direct = out.loads, out.failures, out.direct

        print(f"\ntus 1.0, {args.size_mib} MiB in {args.chunk_mib} MiB PATCHes (curl), median of {args.runs} runs; "
              f"peak RSS is the server's process tree, worst run; every upload has a freshly started server.\n")
        print("| target | server | MiB/s | runs (MiB/s) | peak RSS (MiB) | RSS at start (MiB) | Chute / this |")
        print("|---|---|---:|---|---:|---:|---:|")
        for target, name, label in servers:
            key = (target, name)
            if not results[key]:
                print(f"| {target} | {label} | failed | | {peaks[key] / 1024:.1f} | {idle[key] / 1024:.1f} | n/a |")
                continue
            med = b.median(results[key])
            chute = results.get((target, "chute"))
            ratio = f"{b.median(chute) / med:.2f}x" if chute else "n/a"
            print(f"| {target} | {label} | {med:.0f} | {', '.join(f'{x:.0f}' for x in results[key])} | "
                  f"{peaks[key] / 1024:.1f} | {idle[key] / 1024:.1f} | {ratio} |")
        if direct:
            print(f"| garage | reference: boto3 upload_file straight to Garage (8 MiB parts, 10 threads), no server | "
                  f"{b.median(direct):.0f} | {', '.join(f'{x:.0f}' for x in direct)} | - | - | - |")
        print()
        goals = [("local", "rustus", 1.5), ("local", "tus-node", 2.0), ("garage", "tus-node", 2.0)]
        for target, peer, want in goals:
            if not results.get((target, peer)):
                continue
            if results.get((target, "chute")):
                r = b.median(results[(target, "chute")]) / b.median(results[(target, peer)])
                print(b.goal(f"{target}: Chute >= {want}x {peer}", f"{r:.2f}x", r >= want))
            else:
                print(f"- {target}: Chute >= {want}x {peer}: not measured")
        b.print_notes(notes, failures, loads)
    finally:
        b.rm_rf(work)


if __name__ == "__main__":
    main()
