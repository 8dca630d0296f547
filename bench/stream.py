#!/usr/bin/env python3
"""Streamed multipart form to Garage: Chute vs s3chunkuploader, same run.

One Garage (scripts/garage), two servers writing into its bucket:

- Chute `POST /api/stream` with `store = "s3"` (development mode, open grant);
- s3chunkuploader 0.15 as a one-file Django app (bench/stream-peer/app.py,
  Django 3.1, gunicorn sync worker), its S3FileUploadHandler piping the
  form's file into an S3 multipart upload (5 MB parts, 10 threads).

Each run posts the same 1 GiB file (incompressible, written once, re-salted
before every upload so Garage cannot skip a block it already holds) with

    curl -sS -H 'Expect:' -F 'file=@src.bin;filename=bench-N.bin;type=application/octet-stream' URL

to each server in turn (a freshly started server per upload, a fresh Garage
per run, then boto3 straight into that Garage as the reference row); the
table has the median MiB/s and the peak RSS of each server's process tree
(VmRSS sampled every 20 ms). Then Chute alone
takes a 1 GiB and an 8 GiB form generated on the fly (a socket client
writing the multipart body from memory, so no 8 GiB file is needed), to
show its memory does not grow with the body.

Chute is CHUTE_BIN (default target/release/chute); without it, or when it
has no /api/stream, the peer still runs and the Chute rows say so.

Usage: bench/stream [--runs 3] [--size-mib 1024] [--big-mib 8192]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib as b  # noqa: E402


def curl_form(url: str, src: Path, filename: str) -> tuple[float, int, str]:
    out = subprocess.run(
        ["curl", "-sS", "--max-time", "1800", "-H", "Expect:", "-o", "/dev/stderr", "-w", "%{http_code} %{time_total}",
         "-F", f"file=@{src};filename={filename};type=application/octet-stream", url],
        capture_output=True, text=True,
    )
    if out.returncode != 0:
        raise RuntimeError(f"curl -F to {url}: {out.stderr.strip()[:500]}")
    code, secs = out.stdout.split()
    return float(secs), int(code), out.stderr


def generated_form(url: str, size: int, tag: int) -> tuple[float, int, str]:
    """POSTs a multipart form whose one file is `size` bytes generated in
    memory (1 MiB block, 16 salted bytes per MiB), with a Content-Length as
    curl sends it. Returns (seconds, status, body)."""
    u = urllib.parse.urlsplit(url)
    boundary = f"------------------------bench{tag:016x}"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"bench-gen-{tag}.bin\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    block = bytearray(os.urandom(b.MiB))
    t0 = time.monotonic()
    with socket.create_connection((u.hostname, u.port), timeout=1800) as s:
        s.sendall((f"POST {u.path} HTTP/1.1\r\nHost: {u.netloc}\r\nUser-Agent: bench-stream\r\nAccept: */*\r\n"
                   f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
                   f"Content-Length: {len(head) + size + len(tail)}\r\nConnection: close\r\n\r\n").encode() + head)
        view = memoryview(block)
        for i, off in enumerate(range(0, size, b.MiB)):
            block[:16] = tag.to_bytes(8, "little") + i.to_bytes(8, "little")
            s.sendall(view[: min(b.MiB, size - off)])
        s.sendall(tail)
        resp = b""
        while chunk := s.recv(65536):
            resp += chunk
    secs = time.monotonic() - t0
    head_part, _, body = resp.partition(b"\r\n\r\n")
    status = int(head_part.split(b" ", 2)[1]) if head_part else 0
    return secs, status, body.decode(errors="replace")


def measure_generated(binary: Path, garage: b.Garage, d: Path, mib: int, tag: int,
                      env: dict[str, str] | None = None) -> tuple[float, int, str, b.RssSampler]:
    """One form of `mib` MiB generated on the fly to a freshly started `chute
    serve` (store = "s3" on `garage`, its logs in `d`, `env` added), its
    VmRSS sampled: (seconds, status, body, rss)."""
    proc, base = b.start_chute(binary, d, "chute", env=dict(garage.chute_env(), **(env or {})))
    try:
        b.settle()
        with b.RssSampler(proc.pid) as rss:
            secs, code, body = generated_form(f"{base}/api/stream", mib * b.MiB, tag)
    finally:
        proc.stop()
    return secs, code, body, rss


def start_peer(py: Path, work: Path, garage: b.Garage) -> tuple[b.Proc, str]:
    port = b.free_port()
    gunicorn = py.parent / "gunicorn"
    p = b.Proc("s3chunkuploader", [str(gunicorn), "--chdir", str(b.STREAM_PEER), "--bind", f"127.0.0.1:{port}",
                                   "--workers", "1", "--timeout", "3600", "--log-level", "warning",
                                   "--control-socket", str(work / "gunicorn.ctl"), "app:application"],
               work, env=garage.s3_env())
    b.wait_port(port, p.proc, "s3chunkuploader (gunicorn)", p.log)
    return p, f"http://127.0.0.1:{port}/upload"


def chute_has_stream(base: str) -> bool:
    status, _ = b.http_status("POST", f"{base}/api/stream", {"Content-Type": "multipart/form-data; boundary=x"})
    return status not in (404, 405)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--big-mib", type=int, default=8192, help="the generated form for the memory check (0: skip)")
    args = ap.parse_args()
    b.exit_on_sigterm()
    size = args.size_mib * b.MiB

    py = b.bench_python()
    binary = b.chute_bin()
    base_dir = Path(os.environ.get("BENCH_DIR", tempfile.gettempdir()))
    work = Path(tempfile.mkdtemp(prefix="chute-bench-stream-", dir=base_dir))
    src = work / "src.bin"
    b.make_source(src, size)

    def start(name: str, d: Path, garage: b.Garage) -> tuple[b.Proc, str]:
        """A fresh server with its logs in d."""
        if name == "chute":
            p, base = b.start_chute(binary, d, "chute", env=garage.chute_env())
            return p, f"{base}/api/stream"
        return start_peer(py, d, garage)

    garage = None
    proc = None
    notes = []
    servers = [("chute", 'Chute POST /api/stream (store = "s3")'), ("s3chunkuploader", "s3chunkuploader 0.15 (Django 3.1, gunicorn)")]
    try:
        if not binary:
            notes.append("Chute not measured: no release binary (set CHUTE_BIN or build target/release/chute).")
            servers = servers[1:]
        else:
            proc, base = b.start_chute(binary, work, "probe")
            if not chute_has_stream(base):
                notes.append(f"Chute not measured: {binary} has no POST /api/stream.")
                servers = servers[1:]
            proc.stop()
            proc = None

        names = iter(range(1, 1 << 30))

        def upload(url: str) -> float:
            secs, code, body = curl_form(url, src, f"bench-{next(names)}.bin")
            if not 200 <= code < 300 or str(size) not in body:
                raise RuntimeError(f"answered {code}: {body[:1000]}")
            return secs

        # A fresh Garage every run and a fresh server every upload; the
        # run's data goes with its Garage, so disk use stays at one run's.
        out = b.run_contenders(
            [b.Contender(n, label, lambda d, g, n=n: start(n, d, g), upload, garage=True) for n, label in servers],
            args.runs, args.size_mib, work, [src], lambda garage, key: b.garage_direct(py, garage, src, key))
        results, peaks, idle = out.results, out.peaks, out.idle
        loads, failures, direct = out.loads, out.failures, out.direct
        tag = 1 << 20

        flat = []
        if results.get("chute") and args.big_mib:
            st = os.statvfs(work)
            free_mib = st.f_bavail * st.f_frsize // b.MiB - 2048  # what Garage may fill, 2 GiB spare
            big = args.big_mib
            while big > free_mib and big >= 4 * args.size_mib:
                big //= 2
            if big != args.big_mib:
                notes.append(f"the big generated form is {big} MiB, not {args.big_mib}: {free_mib + 2048} MiB free where Garage stores it")
            for mib in (args.size_mib, big):
                garage = b.Garage(work / f"garage-gen-{mib}")
                if mib > free_mib:
                    notes.append(f"generated {mib} MiB form skipped: {free_mib + 2048} MiB free where Garage stores it")
                else:
                    tag += 1
                    d = work / f"chute-gen-{mib}"
                    d.mkdir()
                    secs, code, body, rss = measure_generated(binary, garage, d, mib, tag)
                    if not 200 <= code < 300 or str(mib * b.MiB) not in body:
                        notes.append(f"Chute answered {code} to the generated {mib} MiB form: {body[:500]}")
                    else:
                        flat.append((mib, mib / secs, rss.peak_kb, rss.before_kb))
                        b.say(f"generated {mib} MiB form: {mib / secs:.0f} MiB/s, peak RSS {rss.peak_kb / 1024:.1f} MiB")
                garage.stop()
                b.rm_rf(garage.dir)
                garage = None

        print(f"\nstreamed multipart form, {args.size_mib} MiB (curl -F) into Garage, median of {args.runs} runs; "
              f"peak RSS is the server's process tree, worst run; every upload has a freshly started server.\n")
        print("| server | MiB/s | runs (MiB/s) | peak RSS (MiB) | RSS at start (MiB) | Chute / this |")
        print("|---|---:|---|---:|---:|---:|")
        for name, label in servers:
            if not results[name]:
                print(f"| {label} | failed | | {peaks[name] / 1024:.1f} | {idle[name] / 1024:.1f} | n/a |")
                continue
            med = b.median(results[name])
            ratio = f"{b.median(results['chute']) / med:.2f}x" if results.get("chute") and results["s3chunkuploader"] else "n/a"
            print(f"| {label} | {med:.0f} | {', '.join(f'{x:.0f}' for x in results[name])} | {peaks[name] / 1024:.1f} | {idle[name] / 1024:.1f} | {ratio} |")
        print(f"| reference: boto3 upload_file straight to Garage (8 MiB parts, 10 threads), no server | {b.median(direct):.0f} | "
              f"{', '.join(f'{x:.0f}' for x in direct)} | - | - | - |")
        if flat:
            print("\nChute alone, a form generated on the fly (one socket client, no file), a fresh server each:\n")
            print("| form size | MiB/s | RSS before (MiB) | peak RSS (MiB) |")
            print("|---:|---:|---:|---:|")
            for mib, rate, peak, before in flat:
                print(f"| {mib} MiB | {rate:.0f} | {before / 1024:.1f} | {peak / 1024:.1f} |")
        print()
        if results.get("chute") and results["s3chunkuploader"]:
            r = b.median(results["chute"]) / b.median(results["s3chunkuploader"])
            print(b.goal("Chute >= 2x s3chunkuploader", f"{r:.2f}x", r >= 2))
            worst = max([peaks["chute"]] + [pk for _, _, pk, _ in flat]) / 1024
            print(b.goal("Chute peak RSS <= 64 MiB", f"{worst:.1f} MiB", worst <= 64))
            if len(flat) == 2:
                d = (flat[1][2] - flat[0][2]) / 1024
                print(b.goal(f"RSS flat (within 10 %) from {flat[0][0]} to {flat[1][0]} MiB",
                             f"peak {flat[0][2] / 1024:.1f} -> {flat[1][2] / 1024:.1f} MiB ({d:+.1f})",
                             flat[1][2] <= flat[0][2] * 1.1))
        else:
            print("- goals: not measured (no Chute with /api/stream)")
        b.print_notes(notes, failures, loads)
    finally:
        b.clean_up(proc, garage, work)


if __name__ == "__main__":
    main()
