#!/usr/bin/env python3
"""Image derivatives per second: Chute's worker pool vs ImageMagick, same run.

The sources are N 12-megapixel (4000x3000) photo-like JPEGs (ImageMagick
plasma fractals with Gaussian noise, quality 90, about 3.7 MiB each like a
phone camera's; distinct seeds; made before any timing).

- **Chute**: `chute serve` (development mode, embedded store,
  `image_workers = 2`) takes every file with `PUT /api/stream/NAME` under
  a grant naming `thumb = "200x200 fit"` with `derive_on = "promote"`, so
  nothing is derived while the files go in. Then the clock starts, every
  upload is promoted (`POST /api/objects/promote`, which queues its
  derivative), and the clock stops when `GET /api/objects/{receipt}/
  derivatives` reports every thumbnail ready. The time covers reading each
  original from the store, decoding, resizing, encoding (JPEG q85) and
  storing the thumbnail, plus the promotions' server-side copies.
- **ImageMagick**: Debian's `convert SRC -thumbnail 200x200 -quality 85
  OUT.jpg` (a fit, as `200x200 fit`; q85 as Chute writes), two processes
  at a time over the same files, each with `MAGICK_THREAD_LIMIT=1`, so
  both sides have two single-threaded workers on the machine's two cores
  (ImageMagick's OpenMP threads would otherwise oversubscribe them: 2
  processes x 2 threads). Chute's jpeg-decoder runs each component's
  IDCT on a short-lived thread of its own, so it is not strictly single
  threaded per worker.
- **ImageMagick, shrink-on-load**: the same with `-define
  jpeg:size=400x300`, libjpeg's DCT scaling (decode at 1/8 here), the
  like-for-like equivalent of Chute's DCT-scaling path (which decodes at
  least twice the output, 400x300 for a 200x150 thumbnail). The plain
  `convert -thumbnail` is what the issue names; both ratios are reported.

Each run reports derivatives per second for both; the table has the
medians. Installs the `imagemagick` package with apt when /usr/bin/convert
is missing (not /usr/local/bin/convert or anything else on PATH).

Chute is CHUTE_BIN (default target/release/chute).

Usage: bench/derivatives [--runs 3] [--files 24]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib as b  # noqa: E402

CONVERT = Path("/usr/bin/convert")
GRANT_KID = "bench1"
GRANT_SECRET = "bench-grant-secret-0123456789abcdef0123"
WIDTH, HEIGHT = 4000, 3000


def ensure_imagemagick() -> None:
    if not CONVERT.exists():
        b.say("installing Debian's imagemagick (apt-get install imagemagick)")
        sudo = [] if os.geteuid() == 0 else ["sudo"]
        subprocess.run(sudo + ["apt-get", "install", "-y", "-q", "imagemagick"], check=True,
                       env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))


def imagemagick_version() -> str:
    out = subprocess.run([str(CONVERT), "-version"], capture_output=True, text=True, check=True).stdout
    # "Version: ImageMagick 6.9.11-60 Q16 x86_64 2021-01-25 https://..."
    return " ".join(out.splitlines()[0].split()[2:3])


def make_photos(work: Path, n: int) -> list[Path]:
    """n distinct 4000x3000 photo-like JPEGs (a few distinct fractals,
    re-encoded with different noise seeds)."""
    paths = []
    for i in range(n):
        path = work / f"photo-{i:03}.jpg"
        subprocess.run([str(CONVERT), "-seed", str(i + 1), "-size", f"{WIDTH}x{HEIGHT}", "plasma:fractal",
                        "-attenuate", "0.15", "+noise", "Gaussian", "-quality", "90", str(path)], check=True)
        paths.append(path)
    return paths


def jwt(claims: dict) -> str:
    return b.grant_jwt(claims, GRANT_KID, GRANT_SECRET)


def call(method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> dict:
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=300) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as e:
        raise RuntimeError(f"{method} {url}: HTTP {e.code}: {e.read()[:500]!r}") from e


def chute_run(binary: Path, work: Path, photos: list[Path], run: int, promoted: list[float], peaks: list[int]) -> float:
    proc, app = b.start_chute(binary, work, f"chute-{run}", env={
        "CHUTE_GRANT_SECRET": f"{GRANT_KID}:{GRANT_SECRET}", "CHUTE_IMAGE_WORKERS": "2",
    })
    try:
        token = jwt({"aud": "chute", "exp": int(time.time()) + 3600,
                     "derivatives": {"thumb": "200x200 fit"}, "derive_on": "promote"})
        receipts = []
        for i, path in enumerate(photos):
            answer = call("PUT", f"{app}/api/stream/bench-{run}-{i}.jpg", path.read_bytes(),
                          {"Authorization": f"Bearer {token}", "Content-Type": "image/jpeg"})
            receipts.append(answer["files"][0]["receipt"])
        b.settle()
        rss = b.RssSampler(proc.pid).__enter__()
        t0 = time.monotonic()
        # Promotions in parallel (8 at a time): each is a server-side copy
        # of the original, which is not what is measured; sequential, they
        # would hold the last derivatives back.
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda r: call("POST", f"{app}/api/objects/promote", json.dumps({"receipt": r}).encode(),
                                         {"Content-Type": "application/json"}), receipts))
        promoted.append(time.monotonic() - t0)
        for r in receipts:
            while True:
                thumb = call("GET", f"{app}/api/objects/{r}/derivatives")["derivatives"]["thumb"]
                if thumb["status"] == "ready":
                    if (thumb["width"], thumb["height"]) != (200, 150):
                        raise RuntimeError(f"unexpected thumbnail size {thumb}")
                    break
                if thumb["status"] == "failed":
                    raise RuntimeError(f"derivative failed: {thumb.get('error')}")
                time.sleep(0.02)
        secs = time.monotonic() - t0
        rss.__exit__(None, None, None)
        peaks.append(rss.peak_kb)
        return secs
    finally:
        proc.stop()


def imagemagick_run(work: Path, photos: list[Path], run: int, extra: list[str], tag: str, peaks: list[int]) -> float:
    """Seconds for `convert [EXTRA] SRC -thumbnail 200x200 -quality 85 OUT`
    over every photo, two processes at a time; the largest peak RSS (KiB)
    of one convert process is appended to peaks."""
    peak = 0
    out = work / f"im-{tag}-{run}"
    out.mkdir()
    b.settle()
    t0 = time.monotonic()
    running: list[subprocess.Popen] = []
    queue = list(photos)
    while queue or running:
        while queue and len(running) < 2:
            p = queue.pop(0)
            running.append(subprocess.Popen([str(CONVERT), *extra, str(p), "-thumbnail", "200x200",
                                             "-quality", "85", str(out / p.name)],
                                            env=dict(os.environ, MAGICK_THREAD_LIMIT="1", OMP_NUM_THREADS="1")))
        done = running.pop(0)
        _, status, usage = os.wait4(done.pid, 0)  # the child's own rusage: its peak RSS
        done.returncode = os.waitstatus_to_exitcode(status)
        peak = max(peak, usage.ru_maxrss)
        if done.returncode != 0:
            raise RuntimeError(f"convert exited with {done.returncode}")
    secs = time.monotonic() - t0
    peaks.append(peak)
    sizes = subprocess.run(["/usr/bin/identify", "-format", "%wx%h\n", *map(str, sorted(out.iterdir()))],
                           capture_output=True, text=True, check=True).stdout.split()
    if set(sizes) != {"200x150"}:
        raise RuntimeError(f"unexpected ImageMagick thumbnail sizes {set(sizes)}")
    return secs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--files", type=int, default=24)
    args = ap.parse_args()
    b.exit_on_sigterm()
    ensure_imagemagick()
    binary = b.measured_binary()
    work = Path(tempfile.mkdtemp(prefix="chute-bench-derivatives-"))
    try:
        b.say(f"making {args.files} {WIDTH}x{HEIGHT} JPEGs")
        photos = make_photos(work, args.files)
        mb = sum(p.stat().st_size for p in photos) / args.files / b.MiB
        chute, magick, shrunk, loads, promoted = [], [], [], [], []
        rss = {"chute": [], "plain": [], "shrink": []}
        for run in range(args.runs):
            loads.append(b.load())
            secs = chute_run(binary, work, photos, run, promoted, rss["chute"])
            chute.append(args.files / secs)
            b.say(f"run {run + 1}: Chute {chute[-1]:.2f}/s")
            secs = imagemagick_run(work, photos, run, [], "plain", rss["plain"])
            magick.append(args.files / secs)
            b.say(f"run {run + 1}: ImageMagick {magick[-1]:.2f}/s")
            secs = imagemagick_run(work, photos, run, ["-define", "jpeg:size=400x300"], "shrink", rss["shrink"])
            shrunk.append(args.files / secs)
            b.say(f"run {run + 1}: ImageMagick shrink-on-load {shrunk[-1]:.2f}/s")
        ratio = b.median(chute) / b.median(magick)
        fair = b.median(chute) / b.median(shrunk)
        print(f"\n200x200 thumbnails of {args.files} {WIDTH}x{HEIGHT} JPEGs ({mb:.1f} MiB each), "
              f"two workers on {os.cpu_count()} cores, median of {args.runs} runs\n")
        print("| tool | derivatives/s | runs | peak RSS (MiB) | Chute / this |")
        print("|---|---:|---|---:|---:|")
        print(f"| Chute (`200x200 fit`, image_workers = 2) | {b.median(chute):.2f} | "
              f"{', '.join(f'{x:.2f}' for x in chute)} | {max(rss['chute']) / 1024:.1f} | 1.00 |")
        print(f"| ImageMagick {imagemagick_version()} (Debian, `convert -thumbnail 200x200 -quality 85`, 2 processes, MAGICK_THREAD_LIMIT=1) | "
              f"{b.median(magick):.2f} | {', '.join(f'{x:.2f}' for x in magick)} | {max(rss['plain']) / 1024:.1f} per process | {ratio:.2f} |")
        print(f"| the same with `-define jpeg:size=400x300` (shrink-on-load by DCT scaling, like Chute's) | "
              f"{b.median(shrunk):.2f} | {', '.join(f'{x:.2f}' for x in shrunk)} | {max(rss['shrink']) / 1024:.1f} per process | {fair:.2f} |")
        print()
        print(b.goal("Chute >= 2x ImageMagick (`convert -thumbnail`, as the issue names it)", f"{ratio:.2f}x", ratio >= 2))
        print(f"- like for like (both decode by DCT scaling): {fair:.2f}x")
        print(f"- Chute's timed window includes promoting all {args.files} uploads (server-side copies, 8 requests "
              f"at a time), done after {', '.join(f'{x:.2f}' for x in promoted)} s of the runs")
        print(f"- 1-minute load average before each run: {' '.join(loads)}")
    finally:
        b.rm_rf(work)


if __name__ == "__main__":
    main()
