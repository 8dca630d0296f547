"""Upload benchmark for the embedded store (driven by bench/upload).

Measures, in one run on one machine:
  * a 1 GiB PUT with a presigned URL (curl -T),
  * a 1 GiB browser POST Object with a signed SigV4 policy (curl -F),
  * the disk limit: dd of 1 GiB with conv=fsync into the data dir,
  * the loopback limit: curl -T of the same file to a discard HTTP server,
and the server's RSS growth during each upload (VmRSS sampled every 20 ms,
VmHWM before/after). Prints a markdown table. Only stdlib and curl; the
signing helpers come from tests/python/s3util.py.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "python"))
sys.path.insert(0, str(ROOT / "bench"))
import benchlib as b  # noqa: E402
from s3util import encode_query, post_policy_v4, presign_query, signed_request  # noqa: E402

ACCESS, SECRET = "benchaccess", "bench-secret-0123456789abcdef0123"
GiB = 1 << 30
MiB = 1 << 20


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def status_kb(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


class RssSampler:
    def __init__(self, pid: int):
        self.pid, self.peak, self._stop = pid, 0, threading.Event()
        self.before = status_kb(pid, "VmRSS")
        self.hwm_before = status_kb(pid, "VmHWM")
        self.t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, status_kb(self.pid, "VmRSS"))
            time.sleep(0.02)

    def __enter__(self):
        self.t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self.t.join()
        self.peak = max(self.peak, status_kb(self.pid, "VmRSS"))
        self.hwm_after = status_kb(self.pid, "VmHWM")

    @property
    def growth_mib(self) -> float:
        return (self.peak - self.before) / 1024


class Server:
    def __init__(self, binary: Path, work: Path):
        self.work = work
        self.data = work / "data"
        self.app_port, self.s3_port = free_port(), free_port()
        self.access_key, self.secret_key = ACCESS, SECRET
        env = dict(os.environ, CHUTE_S3_ACCESS_KEY=ACCESS, CHUTE_S3_SECRET_KEY=SECRET, RUST_LOG="warn")
        self.proc = subprocess.Popen(
            [str(binary), "serve", "--data-dir", str(self.data), "--listen", f"127.0.0.1:{self.app_port}", "--s3-listen", f"127.0.0.1:{self.s3_port}"],
            cwd=work,
            env=env,
            stdout=open(work / "server.out", "wb"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                sys.exit(f"chute serve exited: {(work / 'server.out').read_text()[-4000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.app_port), timeout=1) as s:
                    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    if s.recv(64).startswith(b"HTTP/1.1 200"):
                        return
            except OSError:
                pass
            time.sleep(0.1)
        sys.exit("chute serve never answered /healthz")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(30)


def curl(args: list[str]) -> tuple[int, float, str]:
    out = subprocess.run(
        ["curl", "-sS", "-H", "Expect:", "-o", "/dev/stderr", "-w", "%{http_code} %{time_total}", *args],
        capture_output=True,
        text=True,
        check=True,
    )
    code, secs = out.stdout.split()
    return int(code), float(secs), out.stderr


def bench_put(srv: Server, src: Path, key: str) -> float:
    path = f"/uploads/{key}"
    q = presign_query("PUT", path, f"127.0.0.1:{srv.s3_port}", ACCESS, SECRET, expires=3600)
    code, secs, body = curl(["-T", str(src), f"http://127.0.0.1:{srv.s3_port}{path}?{encode_query(q)}"])
    assert code == 200, (code, body)
    return secs


def bench_post(srv: Server, src: Path, key: str) -> float:
    fields = post_policy_v4(ACCESS, SECRET, [{"bucket": "uploads"}, {"key": key}, ["content-length-range", 0, 2 * GiB]], expires_in=3600)
    args = ["-F", f"key={key}"]
    for k, v in fields.items():
        args += ["-F", f"{k}={v}"]
    args += ["-F", f"file=@{src};type=application/octet-stream", f"http://127.0.0.1:{srv.s3_port}/uploads"]
    code, secs, body = curl(args)
    assert code == 204, (code, body)
    return secs


def delete(srv: Server, key: str):
    r = signed_request(srv, "DELETE", f"/uploads/{key}")
    assert r.status == 204, r


DISCARD = r"""
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 0)); s.listen(4); print(s.getsockname()[1], flush=True)
buf = bytearray(1 << 20)
while True:
    c, _ = s.accept(); head = b""
    while b"\r\n\r\n" not in head: head += c.recv(65536)
    head, rest = head.split(b"\r\n\r\n", 1)
    n = int([l.split(b":")[1] for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")][0])
    n -= len(rest)
    while n > 0: n -= c.recv_into(buf)
    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"); c.close()
"""


def bench_loopback(src: Path) -> float:
    p = subprocess.Popen([sys.executable, "-c", DISCARD], stdout=subprocess.PIPE, text=True)
    try:
        port = int(p.stdout.readline())
        code, secs, _ = curl(["-T", str(src), f"http://127.0.0.1:{port}/discard"])
        assert code == 200
        return secs
    finally:
        p.kill()


def bench_dd(data_dir: Path, size_mib: int) -> float:
    target = data_dir / "ddtest"
    t0 = time.monotonic()
    subprocess.run(["dd", "if=/dev/zero", f"of={target}", "bs=1M", f"count={size_mib}", "conv=fsync"], check=True, capture_output=True)
    secs = time.monotonic() - t0
    target.unlink()
    return secs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=os.environ.get("CHUTE_BIN") or str(b.target_dir() / "release" / "chute"))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--size-mib", type=int, default=1024)
    args = ap.parse_args()
    size = args.size_mib * MiB
    base = Path(os.environ.get("BENCH_DIR", tempfile.gettempdir()))
    work = Path(tempfile.mkdtemp(prefix="chute-bench-", dir=base))
    src = work / "src.bin"
    with open(src, "wb") as f:  # incompressible, written once, read from page cache
        block = os.urandom(MiB)
        for i in range(args.size_mib):
            f.write(i.to_bytes(4, "little") + block[4:])
    srv = Server(Path(args.binary), work)
    rows = []
    try:
        results: dict[str, list[tuple[float, RssSampler | None]]] = {"put": [], "post": [], "dd": [], "loop": []}
        for run in range(args.runs):
            results["dd"].append((bench_dd(srv.data, args.size_mib), None))
            results["loop"].append((bench_loopback(src), None))
            for kind, fn in (("put", bench_put), ("post", bench_post)):
                key = f"bench/{kind}-{run}.bin"
                with RssSampler(srv.proc.pid) as rss:
                    secs = fn(srv, src, key)
                results[kind].append((secs, rss))
                delete(srv, key)
        mibps = {k: statistics.median(args.size_mib / s for s, _ in v) for k, v in results.items()}
        def rss_cols(k):
            samples = [r for _, r in results[k] if r]
            if not samples:
                return "-", "-"
            return f"{max(r.growth_mib for r in samples):.1f}", f"{max(r.hwm_after for r in samples) / 1024:.1f}"
        labels = {
            "put": "PutObject, presigned URL (curl -T)",
            "post": "POST Object, SigV4 policy (curl -F)",
            "dd": "disk: dd bs=1M conv=fsync",
            "loop": "loopback: curl -T to a discard server",
        }
        print(f"\n{args.size_mib} MiB per transfer, median of {args.runs} runs; RSS figures are the worst run.\n")
        print("| transfer | MiB/s | vs disk | vs loopback | server RSS growth (MiB) | server VmHWM after (MiB) |")
        print("|---|---:|---:|---:|---:|---:|")
        for k in ("put", "post", "dd", "loop"):
            g, h = rss_cols(k)
            print(f"| {labels[k]} | {mibps[k]:.0f} | {mibps[k] / mibps['dd']:.2f} | {mibps[k] / mibps['loop']:.2f} | {g} | {h} |")
        print(f"\nserver RSS at start of first upload: {results['put'][0][1].before / 1024:.1f} MiB")
        print()
        for k in ("put", "post"):
            r = mibps[k] / mibps["dd"]
            print(b.goal(f"{labels[k].split(',')[0]} >= 0.80 of the disk (dd)", f"{r:.3f}", r >= 0.8))
        for k in ("put", "post"):
            g = max(r.growth_mib for _, r in results[k] if r)
            print(b.goal(f"{labels[k].split(',')[0]} server RSS growth <= 16 MiB", f"{g:.1f} MiB", g <= 16))
    finally:
        srv.stop()
        subprocess.run(["rm", "-rf", str(work)])


if __name__ == "__main__":
    main()
