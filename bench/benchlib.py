"""Shared pieces of bench/tus.py and bench/stream.py: the servers under test
(Chute, rustus, @tus/server, s3chunkuploader, Garage), installing the peers by
name on a fresh machine, memory sampling and the source files.

Standard library only; the peers live under ~/.cache/chute (rustus, the bench
venv) and bench/tus-peers/node_modules.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "chute"
MiB = 1 << 20
GiB = 1 << 30

RUSTUS_VERSION = "0.5.10"
RUSTUS_ROOT = CACHE / f"rustus-{RUSTUS_VERSION}"
RUSTUS_BIN = RUSTUS_ROOT / "bin" / "rustus"
TUS_PEERS = REPO / "bench" / "tus-peers"
STREAM_PEER = REPO / "bench" / "stream-peer"
BENCH_VENV = CACHE / "bench-venv"


def exit_on_sigterm() -> None:
    """SIGTERM raises SystemExit, so the scripts' cleanup (stopping the
    servers they started in their own sessions) still runs."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


def say(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, what: str, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"bench: {what} exited with {proc.returncode}:\n{log.read_text(errors='replace')[-4000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"bench: {what} did not listen on {port} within {timeout}s")


# ---------------------------------------------------------------- chute binary


def target_dir() -> Path:
    """Cargo's target dir: CARGO_TARGET_DIR, else this tree's target/."""
    return Path(os.environ.get("CARGO_TARGET_DIR") or REPO / "target")


def chute_bin() -> Path | None:
    """The release build to measure: CHUTE_BIN, else the target dir's release/chute."""
    path = Path(os.environ.get("CHUTE_BIN") or target_dir() / "release" / "chute")
    return path if path.is_file() and os.access(path, os.X_OK) else None


def measured_binary() -> Path:
    """chute_bin(), or exit saying how to get one (a suite measures a given
    binary; bench/run builds it)."""
    path = chute_bin()
    if path is None:
        sys.exit("bench: no release chute binary to measure: set CHUTE_BIN to one, "
                 "or build target/release/chute with `cargo build --release -p chute`")
    return path


def release_binary() -> Path:
    """CHUTE_BIN when set; else `cargo build --release -p chute` (a no-op when
    up to date) and a copy of it in ~/.cache/chute/bench-bin/chute-<commit>,
    so a long run measures one binary whatever later builds do to the
    target dir."""
    if os.environ.get("CHUTE_BIN"):
        path = chute_bin()
        if not path:
            sys.exit(f"bench: CHUTE_BIN={os.environ['CHUTE_BIN']} is not an executable file")
        return path
    subprocess.run(["cargo", "build", "--release", "-p", "chute"], cwd=REPO, check=True)
    built = target_dir() / "release" / "chute"
    tag = commit().replace(" (with uncommitted changes)", "-dirty")
    copy = CACHE / "bench-bin" / f"chute-{tag}"
    copy.parent.mkdir(parents=True, exist_ok=True)
    if not copy.exists() or tag.endswith("-dirty"):
        tmp = copy.with_suffix(".tmp")
        shutil.copy2(built, tmp)
        os.replace(tmp, copy)
    # A release binary is over 100 MiB: keep this one and the two newest others.
    mine = sorted((p for p in copy.parent.iterdir() if re.fullmatch(r"chute-[0-9a-f]{7,40}(-dirty)?", p.name)),
                  key=lambda p: p.stat().st_mtime, reverse=True)
    for old in [p for p in mine if p != copy][2:]:
        old.unlink(missing_ok=True)
    return copy


def ensure_requirements(py: Path, requirements: Path) -> None:
    """pip install -r requirements into the bench venv, once per content."""
    stamp = BENCH_VENV / f".req-{requirements.parent.name}"
    want = requirements.read_text()
    if not stamp.exists() or stamp.read_text() != want:
        say(f"installing {requirements.relative_to(REPO)} into {BENCH_VENV}")
        subprocess.run([str(py), "-m", "pip", "install", "-q", "-r", str(requirements)], check=True)
        stamp.write_text(want)


def http_status(method: str, url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str]]:
    """Status and (lowercased) headers of a bodiless request."""
    req = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}


# ---------------------------------------------------------------- peers


def ensure_rustus() -> Path:
    if not RUSTUS_BIN.exists():
        say(f"installing rustus {RUSTUS_VERSION} into {RUSTUS_ROOT} (once; takes a while)")
        subprocess.run(
            ["cargo", "install", "rustus", "--version", RUSTUS_VERSION, "--locked", "--root", str(RUSTUS_ROOT)],
            check=True,
        )
    return RUSTUS_BIN


def ensure_tus_peers() -> None:
    if not (TUS_PEERS / "node_modules" / "@tus" / "server").exists():
        say("installing @tus/server, @tus/file-store, @tus/s3-store (npm ci)")
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=TUS_PEERS, check=True)


def bench_python() -> Path:
    """The bench venv's python with bench/stream-peer/requirements.txt installed."""
    py = BENCH_VENV / "bin" / "python"
    stamp = BENCH_VENV / ".requirements"
    want = (STREAM_PEER / "requirements.txt").read_text()
    if not py.exists() or not stamp.exists() or stamp.read_text() != want:
        say(f"installing the s3chunkuploader peer into {BENCH_VENV}")
        subprocess.run([sys.executable, "-m", "venv", str(BENCH_VENV)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", "-r", str(STREAM_PEER / "requirements.txt")], check=True)
        stamp.write_text(want)
    return py


# ---------------------------------------------------------------- memory


def _status_kb(pid: int, field: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _tree(pid: int) -> list[int]:
    """pid and its descendants (gunicorn's workers, for one)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            with open(f"/proc/{p}/task/{p}/children") as f:
                todo += [int(c) for c in f.read().split()]
        except OSError:
            pass
    return out


def tree_rss_kb(pid: int) -> int:
    return sum(_status_kb(p, "VmRSS") for p in _tree(pid))


def tree_hwm_kb(pid: int) -> int:
    return sum(_status_kb(p, "VmHWM") for p in _tree(pid))


class RssSampler:
    """Peak of the summed VmRSS of a process tree, sampled every 20 ms."""

    def __init__(self, pid: int):
        self.pid, self.peak_kb, self._stop = pid, 0, threading.Event()
        self.before_kb = tree_rss_kb(pid)
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_kb = max(self.peak_kb, tree_rss_kb(self.pid))
            time.sleep(0.02)

    def __enter__(self) -> "RssSampler":
        self._t.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._t.join()
        self.peak_kb = max(self.peak_kb, tree_rss_kb(self.pid))
        self.hwm_kb = tree_hwm_kb(self.pid)


# ---------------------------------------------------------------- processes


class Proc:
    """A server process with its log in the work dir, stopped with SIGTERM."""

    def __init__(self, name: str, argv: list[str], work: Path, env: dict[str, str] | None = None, cwd: Path | None = None):
        self.name = name
        self.log = work / f"{name}.log"
        self.proc = subprocess.Popen(
            argv, cwd=cwd or work, env=dict(os.environ, **(env or {})), stdin=subprocess.DEVNULL,
            stdout=open(self.log, "wb"), stderr=subprocess.STDOUT, start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
            except ProcessLookupError:
                pass


class Garage:
    """A single-node Garage from scripts/garage, its env as a dict."""

    def __init__(self, directory: Path):
        self.dir = directory
        for attempt in range(3):  # a start now and then loses a race for its ports: try again
            out = subprocess.run([str(REPO / "scripts" / "garage"), "start", str(directory)], capture_output=True, text=True)
            if out.returncode == 0:
                break
            say(f"scripts/garage start {directory} failed (attempt {attempt + 1}):\n{out.stderr[-2000:]}")
            subprocess.run([str(REPO / "scripts" / "garage"), "stop", str(directory)], capture_output=True)
            shutil.rmtree(directory, ignore_errors=True)
        else:
            sys.exit(f"bench: scripts/garage start {directory} failed three times")
        self.env = {}
        for line in out.stdout.splitlines():
            if line.startswith("export "):
                k, v = line[len("export "):].split("=", 1)
                self.env[k] = v
        self.endpoint = self.env["CHUTE_TEST_S3_ENDPOINT"]
        self.region = self.env["CHUTE_TEST_S3_REGION"]
        self.bucket = self.env["CHUTE_TEST_S3_BUCKET"]
        self.access_key = self.env["CHUTE_TEST_S3_ACCESS_KEY"]
        self.secret_key = self.env["CHUTE_TEST_S3_SECRET_KEY"]
        self.pid = int(self.env.get("GARAGE_PID", "0"))

    def s3_env(self) -> dict[str, str]:
        """S3_* variables for the peers (bench/tus-peers, bench/stream-peer)."""
        return {"S3_ENDPOINT": self.endpoint, "S3_REGION": self.region, "S3_BUCKET": self.bucket,
                "S3_ACCESS_KEY": self.access_key, "S3_SECRET_KEY": self.secret_key}

    def chute_env(self) -> dict[str, str]:
        return {"CHUTE_STORE": "s3", "CHUTE_S3_ENDPOINT": self.endpoint, "CHUTE_S3_PATH_STYLE": "true",
                "CHUTE_REGION": self.region, "CHUTE_BUCKET": self.bucket,
                "CHUTE_S3_ACCESS_KEY": self.access_key, "CHUTE_S3_SECRET_KEY": self.secret_key}

    def stop(self) -> None:
        subprocess.run([str(REPO / "scripts" / "garage"), "stop", str(self.dir)], capture_output=True)


CHUTE_ACCESS, CHUTE_SECRET = "benchaccess", "bench-secret-0123456789abcdef0123"
GRANT_KID = "bench1"
GRANT_SECRET = "bench-grant-secret-0123456789abcdef0123"


def grant_jwt(claims: dict, kid: str = GRANT_KID, secret: str = GRANT_SECRET) -> str:
    """An HS256 grant as an app signs one (CHUTE_GRANT_SECRET="bench1:<secret>")."""
    def part(obj) -> str:
        raw = json.dumps(obj, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    head = part({"alg": "HS256", "typ": "JWT", "kid": kid})
    body = part(claims)
    sig = hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{base64.urlsafe_b64encode(sig).rstrip(b'=').decode()}"


def start_chute(binary: Path, work: Path, name: str, env: dict[str, str] | None = None) -> tuple[Proc, str]:
    """`chute serve` (development mode, open grant) on free ports; its app URL
    (and the embedded S3 listener's as the Proc's s3_url)."""
    app, s3 = free_port(), free_port()
    data = work / f"{name}-data"
    p = Proc(name, [str(binary), "serve", "--data-dir", str(data), "--listen", f"127.0.0.1:{app}", "--s3-listen", f"127.0.0.1:{s3}"],
             work, env=dict({"CHUTE_S3_ACCESS_KEY": CHUTE_ACCESS, "CHUTE_S3_SECRET_KEY": CHUTE_SECRET,
                             "CHUTE_LOG": "warn", "RUST_LOG": "warn"}, **(env or {})))
    wait_port(app, p.proc, name, p.log)
    p.s3_url = f"http://127.0.0.1:{s3}"  # the embedded store's S3 listener (unused with store = "s3")
    return p, f"http://127.0.0.1:{app}"


DIRECT_PUT = r"""
import sys, time, boto3
from boto3.s3.transfer import TransferConfig
endpoint, region, bucket, access, secret, src, key = sys.argv[1:]
s3 = boto3.client("s3", endpoint_url=endpoint, region_name=region, aws_access_key_id=access, aws_secret_access_key=secret)
t0 = time.monotonic()
s3.upload_file(src, bucket, key, Config=TransferConfig(multipart_threshold=8 << 20, multipart_chunksize=8 << 20, max_concurrency=10))
print(time.monotonic() - t0)
"""


def garage_direct(py: Path, garage: "Garage", src: Path, key: str) -> float:
    """Seconds for boto3's upload_file of src straight to Garage (8 MiB parts,
    10 threads): what Garage itself takes on this machine, no server between."""
    out = subprocess.run([str(py), "-c", DIRECT_PUT, garage.endpoint, garage.region, garage.bucket, garage.access_key,
                          garage.secret_key, str(src), key], check=True, capture_output=True, text=True)
    return float(out.stdout.strip())


# ---------------------------------------------------------------- source data


def make_source(path: Path, size: int) -> None:
    """Incompressible data written once; salt() makes each upload unique."""
    block = os.urandom(MiB)
    with open(path, "wb") as f:
        left = size
        while left > 0:
            n = min(left, MiB)
            f.write(block[:n])
            left -= n


def salt(paths: list[Path], tag: int) -> None:
    """Overwrite 16 bytes at every MiB of the files with (tag, index), so no two
    uploads share a block: Garage stores blocks by content hash and would skip
    writing a block it already holds."""
    index = 0
    for path in paths:
        size = path.stat().st_size
        with open(path, "r+b") as f:
            for off in range(0, size, MiB):
                f.seek(off)
                f.write(tag.to_bytes(8, "little") + index.to_bytes(8, "little"))
                index += 1


def settle() -> None:
    """Write back dirty pages between uploads so one upload's writeback does
    not land in the next one's time."""
    subprocess.run(["sync"], check=False)
    time.sleep(1)


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def load() -> str:
    return Path("/proc/loadavg").read_text().split()[0]


def rm_rf(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


# ---------------------------------------------------------------- the run loop


@dataclass
class Contender:
    """One server under test in run_contenders: start(dir, garage) starts a
    fresh one with its data in dir and returns (Proc, url); upload(url)
    sends the source once and returns its seconds (RuntimeError: failed).
    garage: whether it needs the run's Garage."""

    key: str
    label: str
    start: Callable[[Path, "Garage | None"], tuple[Proc, str]]
    upload: Callable[[str], float]
    garage: bool = False


@dataclass
class Outcome:
    """What run_contenders measured, by contender key: MiB/s of each run,
    peak RSS (KiB, worst run), RSS just before the upload (KiB, worst run);
    plus load averages, failures and the Garage reference runs (MiB/s)."""

    results: dict[str, list[float]] = field(default_factory=dict)
    peaks: dict[str, int] = field(default_factory=dict)
    idle: dict[str, int] = field(default_factory=dict)
    loads: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    direct: list[float] = field(default_factory=list)


def run_contenders(contenders: list[Contender], runs: int, size_mib: int, work: Path, sources: list[Path],
                   reference: Callable[["Garage", str], float] | None = None, tag0: int = 0) -> Outcome:
    """The loop bench/tus, bench/stream and bench/ingest share: every run
    has a fresh Garage (when a contender needs one), every upload a freshly
    started server whose data is removed after it, the sources re-salted
    before every upload (so Garage cannot skip blocks it holds) and the
    page cache written back (settle) before it starts. RSS is the server's
    process tree, sampled every 20 ms. After each run's uploads,
    reference(garage, key) (boto3 straight into that Garage, say) gives the
    ceiling row."""
    out = Outcome(results={c.key: [] for c in contenders}, peaks={c.key: 0 for c in contenders},
                  idle={c.key: 0 for c in contenders})
    tag = tag0
    garage = proc = None
    try:
        for run in range(runs):
            if any(c.garage for c in contenders):
                garage = Garage(work / f"garage-{run}")
            for c in contenders:
                tag += 1
                salt(sources, tag)
                d = work / f"{c.key}-{run}"
                d.mkdir()
                proc, url = c.start(d, garage if c.garage else None)
                settle()
                out.loads.append(load())
                out.idle[c.key] = max(out.idle[c.key], tree_rss_kb(proc.pid))
                secs, rss = timed_upload(proc, lambda: c.upload(url), out.failures, f"run {run + 1}, {c.label}")
                proc = None
                rm_rf(d)
                if secs is None:
                    continue
                out.results[c.key].append(size_mib / secs)
                out.peaks[c.key] = max(out.peaks[c.key], rss.peak_kb)
                say(f"run {run + 1}: {c.label}: {size_mib / secs:.0f} MiB/s, peak RSS {rss.peak_kb / 1024:.1f} MiB")
            if garage:
                if reference:
                    tag += 1
                    salt(sources, tag)
                    settle()
                    secs = reference(garage, f"direct-{tag}.bin")
                    out.direct.append(size_mib / secs)
                    say(f"run {run + 1}: reference straight to Garage: {size_mib / secs:.0f} MiB/s")
                garage.stop()
                rm_rf(garage.dir)
                garage = None
    finally:
        if proc:
            proc.stop()
        if garage:
            garage.stop()
    return out


def timed_upload(proc: Proc, upload, failures: list[str], what: str) -> tuple[float | None, RssSampler]:
    """Runs upload() (its seconds) while sampling proc's RSS, then stops proc.
    A RuntimeError (one stuck or refused upload) is said and kept in failures
    as "<what> failed: <error>", and the seconds are None: the run goes on."""
    with RssSampler(proc.pid) as rss:
        try:
            secs = upload()
        except RuntimeError as e:  # one stuck or refused upload: say so, go on
            failures.append(f"{what} failed: {e}")
            say(failures[-1])
            secs = None
    proc.stop()
    return secs, rss


def print_notes(notes: list[str], failures: list[str], loads: list[str]) -> None:
    """The lines under the goals: notes, failures, the load averages."""
    for n in notes + failures:
        print(f"- {n}")
    print(f"- 1-minute load average before each upload: {' '.join(loads)}")


def clean_up(proc: Proc | None, garage: Garage | None, work: Path) -> None:
    """The scripts' finally: stop what still runs, remove the work dir."""
    if proc:
        proc.stop()
    if garage:
        garage.stop()
    rm_rf(work)


def presign(method: str, endpoint: str, bucket: str, key: str, access: str, secret: str, region: str,
            expires: int = 3600) -> str:
    """A SigV4 presigned URL (path style, host signed, unsigned payload)."""
    u = urllib.parse.urlsplit(endpoint)
    path = "/" + urllib.parse.quote(bucket, safe="-_.~") + "/" + urllib.parse.quote(key, safe="-_.~/")
    now = time.gmtime()
    amz, day = time.strftime("%Y%m%dT%H%M%SZ", now), time.strftime("%Y%m%d", now)
    scope = f"{day}/{region}/s3/aws4_request"
    q = sorted([("X-Amz-Algorithm", "AWS4-HMAC-SHA256"), ("X-Amz-Credential", f"{access}/{scope}"), ("X-Amz-Date", amz),
                ("X-Amz-Expires", str(expires)), ("X-Amz-SignedHeaders", "host")])
    query = "&".join(f"{urllib.parse.quote(k, safe='-_.~')}={urllib.parse.quote(v, safe='-_.~')}" for k, v in q)
    creq = "\n".join([method, path, query, f"host:{u.netloc}\n", "host", "UNSIGNED-PAYLOAD"])
    sts = "\n".join(["AWS4-HMAC-SHA256", amz, scope, hashlib.sha256(creq.encode()).hexdigest()])
    k = ("AWS4" + secret).encode()
    for part in (day, region, "s3", "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    sig = hmac.new(k, sts.encode(), hashlib.sha256).hexdigest()
    return f"{u.scheme}://{u.netloc}{path}?{query}&X-Amz-Signature={sig}"


# ---------------------------------------------------------------- wrk


def ensure_wrk() -> str:
    """wrk (Debian's package), installed with apt when missing."""
    path = shutil.which("wrk")
    if not path:
        say("installing Debian's wrk (apt-get install wrk)")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "update", "-qq"], check=False, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True, env=env)
        path = shutil.which("wrk") or "wrk"
    return path


def wrk_lua(method: str, body: str | None = None, headers: dict[str, str] | None = None) -> str:
    """A wrk script sending one fixed request (method, headers, body)."""
    lines = [f"wrk.method = {json.dumps(method)}"]
    for k, v in (headers or {}).items():
        lines.append(f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}")
    if body is not None:
        lines.append(f"wrk.body = {json.dumps(body)}")
    return "\n".join(lines) + "\n"


def run_wrk(url: str, duration: int, connections: int = 64, threads: int = 2, script: Path | None = None) -> dict:
    """wrk --latency against url: requests/s, p50/p75/p90/p99 in ms, non-2xx/3xx
    count and the socket errors line ("" when none)."""
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency"]
    if script:
        cmd += ["-s", str(script)]
    cmd.append(url)
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    lat = {}
    for pct in ("50", "75", "90", "99"):
        m = re.search(rf"^\s+{pct}(?:\.000)?%\s+([\d.]+)(us|ms|s|m)\b", out, re.M)
        value = float(m.group(1))
        lat[pct] = {"us": value / 1000, "ms": value, "s": value * 1000, "m": value * 60000}[m.group(2)]
    total = re.search(r"(\d+) requests in", out)
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    return {"rps": rps, "lat": lat, "requests": int(total.group(1)) if total else 0,
            "non2xx": int(bad.group(1)) if bad else 0, "socket_errors": errors.group(0) if errors else ""}


# ---------------------------------------------------------------- the machine


def commit() -> str:
    out = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    return (out.stdout.strip() or "unknown") + (" (with uncommitted changes)" if dirty else "")


def loadavg() -> str:
    """The three load averages, as /proc/loadavg has them."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def machine() -> dict[str, str]:
    """What the figures depend on: cores, CPU, memory, kernel, commit, load."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = _status_kb_file("/proc/meminfo", "MemTotal")
    return {"cores": str(os.cpu_count()), "cpu": cpu, "memory": f"{mem / (1 << 20):.1f} GiB",
            "kernel": os.uname().release, "commit": commit(), "load": loadavg(),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def _status_kb_file(path: str, field: str) -> int:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


LOOPBACK_SINK = r"""
import socket, sys
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(1); print(s.getsockname()[1], flush=True)
c, _ = s.accept(); buf = bytearray(1 << 20); n = 0
while True:
    k = c.recv_into(buf)
    if not k: break
    n += k
c.sendall(str(n).encode()); c.close()
"""


def loopback_mibps(size_mib: int) -> float:
    """MiB/s of one TCP stream over loopback: a Python client sending size_mib
    MiB from memory to a Python process that reads and discards them (both
    on the machine's cores, as every bench's client and server are)."""
    p = subprocess.Popen([sys.executable, "-c", LOOPBACK_SINK], stdout=subprocess.PIPE, text=True)
    try:
        port = int(p.stdout.readline())
        block = memoryview(os.urandom(MiB))
        t0 = time.monotonic()
        with socket.create_connection(("127.0.0.1", port)) as s:
            for _ in range(size_mib):
                s.sendall(block)
            s.shutdown(socket.SHUT_WR)
            got = int(s.recv(64) or b"0")
        secs = time.monotonic() - t0
        if got != size_mib * MiB:
            raise RuntimeError(f"loopback sink received {got} of {size_mib * MiB} bytes")
        return size_mib / secs
    finally:
        p.kill()
        p.wait()


def disk_mibps(directory: Path, size_mib: int) -> float:
    """MiB/s of `dd if=/dev/zero of=DIR/ddtest bs=1M count=N conv=fdatasync`:
    a sequential write to the disk the stores use, flushed before dd exits."""
    target = directory / "ddtest"
    t0 = time.monotonic()
    subprocess.run(["dd", "if=/dev/zero", f"of={target}", "bs=1M", f"count={size_mib}", "conv=fdatasync"],
                   check=True, capture_output=True)
    secs = time.monotonic() - t0
    target.unlink()
    return size_mib / secs


def percentile(xs: list[float], pct: float) -> float:
    """Nearest-rank percentile of xs (nan when empty)."""
    if not xs:
        return float("nan")
    ys = sorted(xs)
    k = max(0, min(len(ys) - 1, math.ceil(pct / 100 * len(ys)) - 1))
    return ys[k]


def goal(what: str, figure: str, met: bool) -> str:
    """A goal line as every suite prints it and bench/run collects it:
    `- goal: WHAT: FIGURE, met` (or `NOT met`)."""
    return f"- goal: {what}: {figure}, {'met' if met else 'NOT met'}"
