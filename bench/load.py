#!/usr/bin/env python3
"""Load test: many concurrent uploads of mixed sizes against ONE `chute serve`.

Starts one release `chute serve` (development mode, a grant secret; the
embedded store, or `--backend garage` for `store = "s3"` on a single-node
Garage from scripts/garage), then keeps `--concurrency` uploads in flight
for `--duration` seconds from one Python asyncio client (aiohttp, pinned in
bench/load-client/requirements.txt, installed into
~/.cache/chute/bench-venv). Every upload has a size drawn log-uniformly
from `--min-size` to `--max-size` (1 KiB to 8 MiB) and one of four API
paths, in turn:

- post:      POST /api/uploads (method post) -> POST form to the store
             -> complete -> promote
- put:       POST /api/uploads (method put) -> presigned PUT -> complete -> promote
- multipart: POST /api/uploads (method multipart, 5 MiB parts) -> POST
             /api/uploads/{id}/parts (the part-URL call) -> PUT each part
             -> complete -> promote
- tus:       POST /files/ -> PATCH (4 MiB at most per PATCH) -> HEAD -> promote

Every body is unique (16 bytes rewritten at every MiB, so Garage cannot
skip a block it holds). After promotion the client deletes the promoted
object with a presigned DELETE, so a run of any length needs little disk.
When the disk holding the data has less than `--min-free-gib` free, no new
upload starts (said in the report). Uploads running at the deadline finish
and count.

Reports uploads done, errors (every one listed, grouped), bytes, the peak
RSS of chute (VmRSS sampled every 20 ms, and VmHWM), chute's and the
client's CPU, and p50/p95/p99/max latency of every call kind. Then `wrk`
(Debian's package; installed when missing) drives the signing endpoints of
the same server for `--wrk-duration` s each at `--wrk-connections`:
POST /api/uploads with a grant, POST /api/uploads/{id}/parts (5 part URLs)
and the Companion-compatible GET /s3/params; requests/s, latency
percentiles, non-2xx count.

The soft fd limit is raised to the hard one (ulimit -n; as root the hard
one too, to 1,048,576, when it is below what the concurrency needs) and
the report says so. chute serve gets CHUTE_MAX_CONNECTIONS above the
concurrency (its S3 listener's default is 1,024).

Usage: bench/load [--duration 300] [--concurrency 1000] [--backend embedded|garage]
                  [--min-size 1024] [--max-size 8388608] [--wrk-duration 10] [--no-wrk]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import math
import os
import random
import re
import resource
import sys
import tempfile
import time
import urllib.parse
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib as b  # noqa: E402

import aiohttp  # noqa: E402  (bench venv; bench/load re-executes with it)

# uuids, upload ids and long tokens, so errors group by what went wrong
ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[A-Za-z0-9_-]{20,}|load-\d+")
KINDS = ("post", "put", "multipart", "tus")
PART = 5 * b.MiB
PATCH_MAX = 4 * b.MiB
TUS = "1.0.0"
# Call kinds in report order.
CALLS = ["create", "store: POST form", "store: PUT object", "part URLs", "store: PUT part", "complete",
         "tus POST", "tus PATCH", "tus HEAD", "promote", "store: DELETE"]


class Failure(Exception):
    """One refused or broken call: its kind and what came back."""

    def __init__(self, call: str, what: str):
        super().__init__(f"{call}: {what}")
        self.call = call


class Load:
    def __init__(self, args, app: str, store: dict, grant: str, work: Path):
        self.args, self.app, self.store, self.grant, self.work = args, app, store, grant, work
        self.lat: dict[str, list[float]] = defaultdict(list)
        self.errors: Counter[str] = Counter()
        self.done: Counter[str] = Counter()
        self.bytes = 0
        self.seq = 0
        self.started = 0
        self.stopped_for_disk = False
        self.block = bytes(os.urandom(PATCH_MAX + PART * 2))  # > max-size is sliced from repeats

    def body(self, size: int) -> bytes:
        """size bytes, unique: (pid, sequence, MiB index) at every MiB."""
        self.seq += 1
        out = bytearray(size)
        src = self.block
        for off in range(0, size, len(src)):
            n = min(len(src), size - off)
            out[off:off + n] = src[:n]
        for i, off in enumerate(range(0, size, b.MiB)):
            tag = os.getpid().to_bytes(4, "little") + self.seq.to_bytes(8, "little") + i.to_bytes(4, "little")
            n = min(16, size - off)
            out[off:off + n] = tag[:n]
        return bytes(out)

    def size(self, rng: random.Random) -> int:
        lo, hi = math.log(self.args.min_size), math.log(self.args.max_size)
        return int(math.exp(rng.uniform(lo, hi)))

    async def call(self, session: aiohttp.ClientSession, kind: str, method: str, url: str, ok: tuple[int, ...],
                   **kw) -> tuple[int, dict, bytes]:
        t0 = time.monotonic()
        try:
            async with session.request(method, url, **kw) as r:
                body = await r.read()
                status, headers = r.status, {k.lower(): v for k, v in r.headers.items()}
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as e:
            raise Failure(kind, f"{type(e).__name__}: {e}") from e
        self.lat[kind].append((time.monotonic() - t0) * 1000)
        if status not in ok:
            raise Failure(kind, f"HTTP {status}: {body[:300].decode(errors='replace')}")
        return status, headers, body

    async def api(self, session, kind: str, path: str, payload: dict | None, token: str, ok=(200, 201)) -> dict:
        _, _, body = await self.call(session, kind, "POST", self.app + path, ok, json=payload,
                                     headers={"Authorization": f"Bearer {token}"})
        return json.loads(body)

    async def native(self, session, method: str, name: str, data: bytes) -> str:
        """post, put or multipart through the upload API; the receipt."""
        req = {"filename": name, "size": len(data), "type": "application/octet-stream", "method": method}
        if method == "multipart":
            req["part_size"] = PART
        up = await self.api(session, "create", "/api/uploads", req, self.grant)
        token = up["token"]
        if method == "post":
            form = aiohttp.FormData()
            fields = up["post"]["fields"]
            for k, v in (fields.items() if isinstance(fields, dict) else fields):
                form.add_field(k, v)
            form.add_field("file", data, filename=name, content_type="application/octet-stream")
            await self.call(session, "store: POST form", "POST", up["post"]["url"], (200, 201, 204), data=form)
        elif method == "put":
            await self.call(session, "store: PUT object", "PUT", up["put"]["url"], (200,), data=data,
                            headers=up["put"].get("headers") or {})
        else:
            count = up["multipart"]["part_count"]
            parts = (await self.api(session, "part URLs", f"/api/uploads/{up['id']}/parts",
                                    {"parts": list(range(1, count + 1))}, token))["parts"]
            off = 0
            for p in parts:
                await self.call(session, "store: PUT part", "PUT", p["url"], (200,), data=data[off:off + p["size"]],
                                headers=p.get("headers") or {})
                off += p["size"]
        done = await self.api(session, "complete", f"/api/uploads/{up['id']}/complete", None, token)
        return done["receipt"]

    async def tus(self, session, name: str, data: bytes) -> str:
        meta = "filename " + base64.b64encode(name.encode()).decode() + ",filetype " + \
            base64.b64encode(b"application/octet-stream").decode()
        _, h, _ = await self.call(session, "tus POST", "POST", self.app + "/files/", (201,), headers={
            "Tus-Resumable": TUS, "Upload-Length": str(len(data)), "Upload-Metadata": meta,
            "Authorization": f"Bearer {self.grant}"})
        url = urllib.parse.urljoin(self.app + "/files/", h["location"])
        off, receipt = 0, None
        while off < len(data) or not data:
            chunk = data[off:off + PATCH_MAX]
            _, h, _ = await self.call(session, "tus PATCH", "PATCH", url, (204,), data=chunk, headers={
                "Tus-Resumable": TUS, "Upload-Offset": str(off), "Content-Type": "application/offset+octet-stream"})
            off += len(chunk)
            if h.get("upload-offset") != str(off):
                raise Failure("tus PATCH", f"Upload-Offset {h.get('upload-offset')} after sending up to {off}")
            receipt = h.get("chute-receipt") or receipt
            if not data:
                break
        _, h, _ = await self.call(session, "tus HEAD", "HEAD", url, (200, 204), headers={"Tus-Resumable": TUS})
        if h.get("upload-offset") != str(len(data)):
            raise Failure("tus HEAD", f"Upload-Offset {h.get('upload-offset')} for a {len(data)}-byte upload")
        receipt = receipt or h.get("chute-receipt")
        if not receipt:
            raise Failure("tus PATCH", "the completing PATCH and the HEAD carried no Chute-Receipt")
        return receipt

    async def one(self, session, kind: str, size: int, n: int) -> None:
        name = f"load-{n}.bin"
        data = self.body(size)
        receipt = await (self.tus(session, name, data) if kind == "tus" else self.native(session, kind, name, data))
        promoted = await self.api(session, "promote", "/api/objects/promote", {"receipt": receipt}, self.grant)
        if promoted.get("size") != size:
            raise Failure("promote", f"promoted {promoted.get('size')} bytes of {size}")
        await self.call(session, "store: DELETE", "DELETE", self.delete_url(promoted["key"]), (200, 204))
        self.bytes += size
        self.done[kind] += 1

    def delete_url(self, key: str) -> str:
        s = self.store
        return b.presign("DELETE", s["endpoint"], s["bucket"], key, s["access"], s["secret"], s["region"])

    async def worker(self, session, w: int, deadline: float) -> None:
        rng = random.Random(w)
        i = w
        while time.monotonic() < deadline and not self.stopped_for_disk:
            kind = KINDS[i % len(KINDS)]
            i += 1
            self.started += 1
            n = self.started
            try:
                await self.one(session, kind, self.size(rng), n)
            except Failure as e:
                self.error(f"{kind} upload, {e}")
            except Exception as e:  # noqa: BLE001 - counted and listed, never hidden
                self.error(f"{kind} upload, {type(e).__name__}: {e}")

    def error(self, what: str) -> None:
        """Counts an error, grouped with others that differ only in ids."""
        self.errors[ID.sub("<id>", what)[:400]] += 1
        if sum(self.errors.values()) <= 5:
            b.say(f"error: {what[:1000]}")

    async def disk_guard(self, deadline: float) -> None:
        while time.monotonic() < deadline and not self.stopped_for_disk:
            st = os.statvfs(self.work)
            if st.f_bavail * st.f_frsize < self.args.min_free_gib * b.GiB:
                self.stopped_for_disk = True
                b.say(f"less than {self.args.min_free_gib} GiB free under {self.work}: no new uploads")
            await asyncio.sleep(2)

    async def progress(self, t0: float, deadline: float) -> None:
        while time.monotonic() < deadline:
            await asyncio.sleep(10)
            b.say(f"{time.monotonic() - t0:.0f} s: {sum(self.done.values())} uploads done, "
                  f"{self.bytes / b.MiB:.0f} MiB, {sum(self.errors.values())} errors")

    async def run(self) -> float:
        timeout = aiohttp.ClientTimeout(total=300)  # a hang guard, never reached by a working run
        conn = aiohttp.TCPConnector(limit=0, limit_per_host=0, force_close=False)
        async with aiohttp.ClientSession(connector=conn, timeout=timeout) as session:
            t0 = time.monotonic()
            deadline = t0 + self.args.duration
            extra = [asyncio.create_task(self.disk_guard(deadline)), asyncio.create_task(self.progress(t0, deadline))]
            await asyncio.gather(*(self.worker(session, w, deadline) for w in range(self.args.concurrency)))
            secs = time.monotonic() - t0
            for t in extra:
                t.cancel()
            return secs


def raise_fd_limit(need: int) -> str:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    was = soft
    if hard < need and os.geteuid() == 0:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (1 << 20, 1 << 20))
            soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        except (ValueError, OSError):
            pass
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    if soft < need:
        sys.exit(f"bench/load: the fd limit is {soft}, {need} needed for --concurrency; raise it (ulimit -Hn)")
    return f"fd limit (ulimit -n) raised from {was} to {soft} for the client and chute serve" if soft != was \
        else f"fd limit (ulimit -n) {soft}, enough"


def cpu_secs(pid: int) -> float:
    """utime + stime of pid and its reaped children, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def wrk_phase(args, app: str, grant: str, work: Path) -> list[tuple[str, dict]]:
    import urllib.request

    def post(path: str, payload: dict, token: str) -> dict:
        req = urllib.request.Request(app + path, data=json.dumps(payload).encode(), method="POST",
                                     headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())

    b.ensure_wrk()
    create = {"filename": "photo.png", "size": 12345, "type": "image/png"}
    post("/api/uploads", create, grant)  # checked by hand: an error page would be fast too
    mp = post("/api/uploads", {"filename": "video.mp4", "size": 100 * b.MiB, "type": "video/mp4",
                               "method": "multipart"}, grant)
    parts = {"parts": [1, 2, 3, 4, 5]}
    if len(post(f"/api/uploads/{mp['id']}/parts", parts, mp["token"])["parts"]) != 5:
        sys.exit("bench/load: the part-URL call did not answer 5 URLs")
    params = "/s3/params?filename=photo.png&type=image%2Fpng&metadata%5Bsize%5D=12345"
    req = urllib.request.Request(app + params, headers={"Authorization": f"Bearer {grant}"})
    with urllib.request.urlopen(req, timeout=30) as r:
        if not json.loads(r.read()).get("fields"):
            sys.exit("bench/load: /s3/params answered no form fields")
    targets = [
        ("POST /api/uploads (grant)", app + "/api/uploads",
         b.wrk_lua("POST", json.dumps(create), {"Content-Type": "application/json", "Authorization": f"Bearer {grant}"})),
        ("POST /api/uploads/{id}/parts (5 part URLs)", f"{app}/api/uploads/{mp['id']}/parts",
         b.wrk_lua("POST", json.dumps(parts), {"Content-Type": "application/json", "Authorization": f"Bearer {mp['token']}"})),
        ("GET /s3/params (Companion-compatible)", app + params, b.wrk_lua("GET", None, {"Authorization": f"Bearer {grant}"})),
    ]
    out = []
    for i, (label, url, lua) in enumerate(targets):
        script = work / f"wrk-{i}.lua"
        script.write_text(lua)
        b.run_wrk(url, 2, args.wrk_connections, args.wrk_threads, script)  # warm-up
        r = b.run_wrk(url, args.wrk_duration, args.wrk_connections, args.wrk_threads, script)
        b.say(f"wrk {label}: {r['rps']:.0f} requests/s, p99 {r['lat']['99']:.2f} ms, {r['non2xx']} non-2xx")
        out.append((label, r))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=int, default=300, help="seconds new uploads keep starting")
    ap.add_argument("--concurrency", type=int, default=1000, help="uploads in flight")
    ap.add_argument("--backend", choices=["embedded", "garage"], default="embedded")
    ap.add_argument("--min-size", type=int, default=1024)
    ap.add_argument("--max-size", type=int, default=8 * b.MiB)
    ap.add_argument("--min-free-gib", type=float, default=4.0, help="no new upload below this much free disk")
    ap.add_argument("--wrk-duration", type=int, default=10)
    ap.add_argument("--wrk-connections", type=int, default=64)
    ap.add_argument("--wrk-threads", type=int, default=2)
    ap.add_argument("--no-wrk", action="store_true")
    args = ap.parse_args()
    b.exit_on_sigterm()
    fd_note = raise_fd_limit(args.concurrency * 4 + 1024)
    binary = b.measured_binary()
    base_dir = Path(os.environ.get("BENCH_DIR", tempfile.gettempdir()))
    work = Path(tempfile.mkdtemp(prefix="chute-bench-load-", dir=base_dir))
    garage = proc = None
    head = b.machine()
    try:
        env = {"CHUTE_GRANT_SECRET": f"{b.GRANT_KID}:{b.GRANT_SECRET}",
               "CHUTE_MAX_CONNECTIONS": str(max(4096, args.concurrency * 4))}
        if args.backend == "garage":
            garage = b.Garage(work / "garage")
            env.update(garage.chute_env())
        proc, app = b.start_chute(binary, work, "chute", env=env)
        if garage:
            store = {"endpoint": garage.endpoint, "bucket": garage.bucket, "access": garage.access_key,
                     "secret": garage.secret_key, "region": garage.region}
        else:
            store = {"endpoint": proc.s3_url, "bucket": "uploads", "access": b.CHUTE_ACCESS, "secret": b.CHUTE_SECRET,
                     "region": "us-east-1"}
        grant = b.grant_jwt({"aud": "chute", "exp": int(time.time()) + 86400, "sub": "bench-load",
                             "max_size": max(args.max_size, 200 * b.MiB)})
        load = Load(args, app, store, grant, work)
        b.say(f"{args.concurrency} uploads in flight for {args.duration} s against {app} ({args.backend}); {fd_note}")
        chute_cpu0, client0 = cpu_secs(proc.pid), os.times()
        with b.RssSampler(proc.pid) as rss:
            secs = asyncio.run(load.run())
        chute_cpu = cpu_secs(proc.pid) - chute_cpu0
        t1 = os.times()
        client_cpu = (t1.user - client0.user) + (t1.system - client0.system)
        wrk = []
        if not args.no_wrk:
            with b.RssSampler(proc.pid) as wrk_rss:
                wrk = wrk_phase(args, app, grant, work)
        end_load = b.loadavg()

        done = sum(load.done.values())
        errors = sum(load.errors.values())
        backend = "embedded store" if args.backend == "embedded" else 'store = "s3" on a single-node Garage'
        print(f"\n{args.concurrency} concurrent uploads of {args.min_size} B to {args.max_size / b.MiB:g} MiB "
              f"(log-uniform sizes; post, put, multipart and tus in turn) for {args.duration} s against one "
              f"`chute serve` ({backend}), "
              f"one Python asyncio client (aiohttp).\n")
        print(f"Machine: {head['cores']} cores ({head['cpu']}), {head['memory']}, kernel {head['kernel']}, "
              f"commit {head['commit']}; load average {head['load']} at start, {end_load} at end.\n")
        print("| uploads done | post / put / multipart / tus | errors | MiB | uploads/s | MiB/s | chute peak RSS (MiB) "
              "| chute VmHWM (MiB) | chute CPU (cores) | client CPU (cores) |")
        print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        print(f"| {done} | {' / '.join(str(load.done[k]) for k in KINDS)} | {errors} | {load.bytes / b.MiB:.0f} | "
              f"{done / secs:.1f} | {load.bytes / b.MiB / secs:.1f} | {rss.peak_kb / 1024:.1f} | {rss.hwm_kb / 1024:.1f} | "
              f"{chute_cpu / secs:.2f} | {client_cpu / secs:.2f} |")
        print("\nLatency of each call (ms, from request sent to whole answer read, as the client saw it):\n")
        print("| call | count | p50 | p95 | p99 | max |")
        print("|---|---:|---:|---:|---:|---:|")
        for kind in CALLS:
            xs = load.lat.get(kind)
            if xs:
                print(f"| {kind} | {len(xs)} | {b.percentile(xs, 50):.1f} | {b.percentile(xs, 95):.1f} | "
                      f"{b.percentile(xs, 99):.1f} | {max(xs):.1f} |")
        if wrk:
            print(f"\n`wrk -t{args.wrk_threads} -c{args.wrk_connections} -d{args.wrk_duration}s --latency` on the "
                  f"signing endpoints of the same server, after the load (chute peak RSS during wrk "
                  f"{wrk_rss.peak_kb / 1024:.1f} MiB):\n")
            print("| endpoint | requests/s | p50 ms | p75 ms | p90 ms | p99 ms | requests | non-2xx |")
            print("|---|---:|---:|---:|---:|---:|---:|---:|")
            for label, r in wrk:
                print(f"| {label} | {r['rps']:.0f} | {r['lat']['50']:.2f} | {r['lat']['75']:.2f} | {r['lat']['90']:.2f} | "
                      f"{r['lat']['99']:.2f} | {r['requests']} | {r['non2xx']} |")
        print()
        print(b.goal("0 errors", str(errors), errors == 0))
        print(b.goal("chute peak RSS <= 1 GiB under load", f"{rss.peak_kb / 1024:.1f} MiB", rss.peak_kb <= 1024 * 1024))
        for label, r in wrk:
            print(b.goal(f"wrk {label}: 0 non-2xx", str(r["non2xx"]), r["non2xx"] == 0))
        groups = sorted(load.errors.items(), key=lambda kv: -kv[1])
        for what, n in groups[:30]:
            print(f"- error ({n}x): {what}")
        if len(groups) > 30:
            print(f"- ... and {len(groups) - 30} more kinds of error, {sum(n for _, n in groups[30:])} errors")
        print(f"- {fd_note}; chute serve ran with CHUTE_MAX_CONNECTIONS={env['CHUTE_MAX_CONNECTIONS']}")
        print(f"- {load.started} uploads started, {done} done; {secs:.0f} s from the first start to the last "
              f"finish ({args.duration} s of starts, then the uploads in flight finished)")
        if client_cpu / secs > 0.9:
            print(f"- the client used {client_cpu / secs:.2f} cores: it saturates one core (Python's event loop), "
                  "so the request rate is the client's limit as much as Chute's")
        if load.stopped_for_disk:
            print(f"- new uploads stopped early: less than {args.min_free_gib} GiB free under {work}")
        if garage:
            print("- Garage keeps deleted blocks for its GC delay, so its data dir grows with every byte sent")
    finally:
        b.clean_up(proc, garage, work)


if __name__ == "__main__":
    main()
