#!/usr/bin/env python3
"""Signing API throughput and latency: Chute vs Uppy Companion, same run.

Starts a release `chute serve` (development mode, embedded store) and
`@uppy/companion` 6.2.2 (bench/companion, pointed at Chute's embedded S3
listener), then drives each endpoint with `wrk` at 64 connections:

  params   GET /s3/params?filename=&type=          (POST form signing)
  batch    GET /s3/multipart/{id}/batch?partNumbers=1..5   (5 part URLs)
  uploads  POST /api/uploads                        (Chute only: native API)

and prints a markdown table (requests/s, p50/p90/p99 latency, non-2xx
count, ratio to Companion). Every response is checked once by hand
before the load, so a run measuring error pages fails loudly.

With --runs N every measurement is repeated N times (after one 2 s
warm-up) and the table has the medians; peak RSS is each server's process
tree over the whole bench (VmRSS sampled every 20 ms).

Usage: bench/signing [--runs 1] [--duration 10] [--connections 64] [--threads 2]
Needs: wrk (apt, installed when missing), node + npm. Chute is CHUTE_BIN
(default: `cargo build --release -p chute`, copied to ~/.cache/chute/bench-bin).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib as b  # noqa: E402

REPO = b.REPO
COMPANION_DIR = REPO / "bench" / "companion"


def wait_http(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except Exception:  # noqa: BLE001 - not up yet
            time.sleep(0.2)
    sys.exit(f"bench/signing: {url} did not answer within {timeout}s")


def http(method: str, url: str, body: dict | None = None) -> tuple[int, dict | list]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, {"error": e.read().decode(errors="replace")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    b.exit_on_sigterm()
    b.ensure_wrk()
    binary = b.release_binary()
    if not (COMPANION_DIR / "node_modules" / "@uppy" / "companion").exists():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=COMPANION_DIR, check=True)

    work = Path(tempfile.mkdtemp(prefix="chute-bench-signing-"))
    chute_proc: b.Proc | None = None
    companion: subprocess.Popen | None = None
    try:
        # Companion signs for the embedded S3 listener, with the same keys.
        chute_proc, chute_url = b.start_chute(binary, work, "chute")
        comp_port = b.free_port()
        (work / "companion").mkdir()
        cenv = dict(
            os.environ, NODE_ENV="production", COMPANION_PORT=str(comp_port), COMPANION_DOMAIN=f"127.0.0.1:{comp_port}",
            COMPANION_PROTOCOL="http", COMPANION_UPLOAD_URLS=f"{chute_proc.s3_url}/", COMPANION_SECRET="bench-companion-secret", COMPANION_DATADIR=str(work / "companion"),
            COMPANION_CLIENT_ORIGINS="true", COMPANION_HIDE_WELCOME="true", COMPANION_HIDE_METRICS="true",
            COMPANION_AWS_KEY=b.CHUTE_ACCESS, COMPANION_AWS_SECRET=b.CHUTE_SECRET, COMPANION_AWS_BUCKET="uploads",
            COMPANION_AWS_REGION="us-east-1", COMPANION_AWS_ENDPOINT=chute_proc.s3_url,
            COMPANION_AWS_FORCE_PATH_STYLE="true", AWS_REQUEST_CHECKSUM_CALCULATION="WHEN_REQUIRED",
        )
        companion = subprocess.Popen(
            ["node", str(COMPANION_DIR / "node_modules" / "@uppy" / "companion" / "bin" / "companion")],
            env=cenv, cwd=work, stdout=subprocess.DEVNULL, stderr=open(work / "companion.log", "wb"))
        comp_url = f"http://127.0.0.1:{comp_port}"
        wait_http(f"{chute_url}/healthz")
        wait_http(f"{comp_url}/s3/params?filename=a.png&type=image/png")

        # Uppy sends no size; Chute needs it as metadata (both servers get it).
        params = "/s3/params?filename=photo.png&type=image%2Fpng&metadata%5Bsize%5D=12345"
        targets: dict[str, dict[str, str | None]] = {"params": {}, "batch": {}, "uploads": {}}
        for name, base in (("companion", comp_url), ("chute", chute_url)):
            status, body = http("GET", base + params)
            assert status == 200 and body.get("url") and body.get("fields"), (name, status, body)
            targets["params"][name] = base + params
            status, mp = http("POST", base + "/s3/multipart",
                              {"filename": "video.mp4", "type": "video/mp4", "metadata": {"size": 100 << 20}})
            assert status == 200 and mp.get("uploadId"), (name, status, mp)
            q = urllib.parse.urlencode({"key": mp["key"], "partNumbers": "1,2,3,4,5"})
            batch = f"{base}/s3/multipart/{urllib.parse.quote(mp['uploadId'], safe='')}/batch?{q}"
            status, urls = http("GET", batch)
            assert status == 200 and len(urls.get("presignedUrls", {})) == 5, (name, status, urls)
            targets["batch"][name] = batch
        status, created = http("POST", chute_url + "/api/uploads", {"filename": "photo.png", "size": 12345, "type": "image/png"})
        assert status == 201 and created.get("post"), (status, created)
        targets["uploads"]["chute"] = chute_url + "/api/uploads"
        targets["uploads"]["companion"] = None
        lua = work / "post.lua"
        lua.write_text(b.wrk_lua("POST", '{"filename":"photo.png","size":12345,"type":"image/png"}',
                                 {"Content-Type": "application/json"}))

        rss = {"chute": b.RssSampler(chute_proc.pid), "companion": b.RssSampler(companion.pid)}
        for sampler in rss.values():
            sampler.__enter__()
        rows = []
        for endpoint, per in targets.items():
            results = {}
            for name in ("companion", "chute"):
                url = per.get(name)
                if url is None:
                    continue
                script = lua if endpoint == "uploads" else None
                b.run_wrk(url, 2, args.connections, args.threads, script)  # warm-up
                runs = [b.run_wrk(url, args.duration, args.connections, args.threads, script) for _ in range(args.runs)]
                results[name] = {
                    "rps": b.median([r["rps"] for r in runs]), "all": [r["rps"] for r in runs],
                    "lat": {pct: b.median([r["lat"][pct] for r in runs]) for pct in ("50", "90", "99")},
                    "non2xx": sum(r["non2xx"] for r in runs),
                    "socket_errors": "; ".join(r["socket_errors"] for r in runs if r["socket_errors"]),
                }
                b.say(f"{endpoint} {name}: {results[name]['rps']:.0f} requests/s (median of {args.runs})")
            rows.append((endpoint, results))
        for sampler in rss.values():
            sampler.__exit__(None, None, None)

        print(f"\nwrk -t{args.threads} -c{args.connections} -d{args.duration}s, one machine, same run, "
              f"median of {args.runs} run(s); peak RSS is each server's process tree over the whole bench\n")
        print("| endpoint | server | requests/s | runs | p50 ms | p90 ms | p99 ms | non-2xx | vs Companion |")
        print("|---|---|---:|---|---:|---:|---:|---:|---:|")
        for endpoint, results in rows:
            base = results.get("companion", {}).get("rps")
            for name, r in results.items():
                ratio = f"{r['rps'] / base:.1f}x" if base and name == "chute" else ("1.0x" if name == "companion" else "n/a")
                print(f"| {endpoint} | {name} | {r['rps']:.0f} | {', '.join(f'{x:.0f}' for x in r['all'])} | "
                      f"{r['lat']['50']:.2f} | {r['lat']['90']:.2f} | {r['lat']['99']:.2f} | {r['non2xx']} | {ratio} |")
                if r["socket_errors"]:
                    print(f"<!-- {endpoint}/{name}: {r['socket_errors']} -->")
        print("\n| server | peak RSS (MiB) |\n|---|---:|")
        for name, sampler in rss.items():
            print(f"| {name} | {sampler.peak_kb / 1024:.1f} |")
        print()
        for endpoint, results in rows:
            chute, comp = results["chute"], results.get("companion")
            if comp:
                r = chute["rps"] / comp["rps"]
                print(b.goal(f"{endpoint}: Chute >= 10x Companion's requests/s", f"{r:.1f}x", r >= 10))
            print(b.goal(f"{endpoint}: Chute p99 <= 10 ms", f"{chute['lat']['99']:.2f} ms", chute["lat"]["99"] <= 10))
    finally:
        if companion is not None:
            companion.terminate()
            try:
                companion.wait(10)
            except subprocess.TimeoutExpired:
                companion.kill()
        if chute_proc is not None:
            chute_proc.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
