#!/usr/bin/env python3
"""Where a streamed form's memory goes: chute's peak RSS on a generated
form into Garage under allocator and in-flight settings, same binary.

Each round starts a fresh Garage (scripts/garage) and a fresh `chute
serve` (store = "s3") per setting, posts one form generated on the fly
(bench/stream's `measure_generated`) and samples the server's VmRSS every
20 ms; settings take turns, in alternating order from round to round.
Prints a markdown table: median MiB/s and every run's peak RSS.

Usage: CHUTE_BIN=target/release/chute bench/stream_rss.py [--rounds 3] [--size-mib 1024]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib as b  # noqa: E402
from stream import measure_generated  # noqa: E402

SETTINGS = {
    "defaults": {},
    "`MALLOC_MMAP_THRESHOLD_=131072` (a fixed mmap threshold)": {"MALLOC_MMAP_THRESHOLD_": "131072"},
    "`MALLOC_ARENA_MAX=1`": {"MALLOC_ARENA_MAX": "1"},
    "`CHUTE_STREAM_PARTS_IN_FLIGHT=3`": {"CHUTE_STREAM_PARTS_IN_FLIGHT": "3"},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--size-mib", type=int, default=1024)
    args = ap.parse_args()
    binary = b.measured_binary()
    base_dir = Path(os.environ.get("BENCH_DIR", tempfile.gettempdir()))
    work = Path(tempfile.mkdtemp(prefix="chute-bench-stream-rss-", dir=base_dir))
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in SETTINGS}
    tag = 7 << 20
    try:
        for r in range(args.rounds):
            order = list(SETTINGS) if r % 2 == 0 else list(reversed(SETTINGS))
            for i, name in enumerate(order):
                garage = b.Garage(work / f"garage-{r}-{i}")
                d = work / f"chute-{r}-{i}"
                d.mkdir()
                tag += 1
                try:
                    secs, code, body, rss = measure_generated(binary, garage, d, args.size_mib, tag, SETTINGS[name])
                finally:
                    garage.stop()
                    b.rm_rf(garage.dir)
                    b.rm_rf(d)
                if not 200 <= code < 300:
                    sys.exit(f"chute answered {code} under {name}: {body[:500]}")
                runs[name].append((args.size_mib / secs, rss.peak_kb / 1024))
                b.say(f"round {r + 1}, {name}: {args.size_mib / secs:.0f} MiB/s, peak RSS {rss.peak_kb / 1024:.1f} MiB")
    finally:
        b.rm_rf(work)
    print(f"\ngenerated {args.size_mib} MiB form into Garage, {args.rounds} rounds, settings in turn\n")
    print("| setting | MiB/s (median) | peak RSS per run (MiB) | worst |")
    print("|---|---:|---|---:|")
    for name, v in runs.items():
        print(f"| {name} | {b.median([x[0] for x in v]):.0f} | {', '.join(f'{x[1]:.1f}' for x in v)} | {max(x[1] for x in v):.1f} |")


if __name__ == "__main__":
    main()
