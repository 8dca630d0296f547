#!/usr/bin/env python3
"""`chute upload` vs `aws s3 cp`: 1 GiB into Garage, same run.

One Garage (scripts/garage) per run, and in each run:

- `chute serve` with `store = "s3"` on that Garage (development mode, open
  grant), and the client under test
      chute upload --json --to URL --state-dir DIR src.bin
  (defaults: 4 parts in flight, 16 MiB parts, CRC32C of each part checked
  by Garage);
- `aws s3 cp src.bin s3://BUCKET/KEY --endpoint-url GARAGE` (awscli 1.46.3
  from bench/cli-peer/requirements.txt, its defaults: 8 MiB parts, 10
  requests in flight), path-style addressing, straight into the same
  Garage with its own keys.

The file is 1 GiB of incompressible data written once and re-salted before
every upload (Garage stores blocks by content hash and would skip a block it
already holds). The two clients take turns, the one going first alternating
by run. The table has median MiB/s (wall clock of the whole command,
process start to exit) and the peak RSS of each client's process.

Usage: bench/cli [--runs 3] [--size-mib 1024] [--parallel 4] [--part-mib 16]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib as b  # noqa: E402

CLI_PEER = b.REPO / "bench" / "cli-peer" / "requirements.txt"


def ensure_awscli(py: Path) -> Path:
    aws = py.parent / "aws"
    stamp = b.BENCH_VENV / ".cli-peer"
    want = CLI_PEER.read_text()
    if not aws.exists() or not stamp.exists() or stamp.read_text() != want:
        b.say(f"installing awscli into {b.BENCH_VENV}")
        subprocess.run([str(py), "-m", "pip", "install", "-q", "-r", str(CLI_PEER)], check=True)
        stamp.write_text(want)
    return aws


def timed(argv: list[str], env: dict[str, str], what: str) -> tuple[float, int, str]:
    """Runs argv, sampling its RSS; (seconds, peak RSS KiB, stdout)."""
    t0 = time.monotonic()
    p = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with b.RssSampler(p.pid) as rss:
        out, err = p.communicate(timeout=1800)
    secs = time.monotonic() - t0
    if p.returncode != 0:
        raise RuntimeError(f"{what} exited with {p.returncode}: {err.strip()[-1000:]}")
    return secs, rss.peak_kb, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--parallel", type=int, default=4, help="chute upload --parallel")
    ap.add_argument("--part-mib", type=int, default=16, help="chute upload --part-size (MiB)")
    args = ap.parse_args()
    b.exit_on_sigterm()
    size = args.size_mib * b.MiB

    binary = b.measured_binary()
    py = b.bench_python()
    aws = ensure_awscli(py)
    base_dir = Path(os.environ.get("BENCH_DIR", tempfile.gettempdir()))
    work = Path(tempfile.mkdtemp(prefix="chute-bench-cli-", dir=base_dir))
    src = work / "src.bin"
    b.make_source(src, size)

    clients = [("chute", f"chute upload (--parallel {args.parallel}, --part-size {args.part_mib}M)"),
               ("aws", "aws s3 cp (awscli 1.46.3 defaults)")]
    results = {n: [] for n, _ in clients}
    peaks = {n: 0 for n, _ in clients}
    loads, failures, notes = [], [], []
    serve_peak = 0  # chute serve's peak RSS (KiB) while it signed chute upload's parts
    garage = None
    proc = None
    tag = 0
    try:
        for run in range(args.runs):
            garage = b.Garage(work / f"garage-{run}")
            d = work / f"chute-{run}"
            d.mkdir()
            proc, base = b.start_chute(binary, d, "chute", env=garage.chute_env())
            aws_config = work / "aws-config"
            aws_config.write_text(f"[default]\nregion = {garage.region}\ns3 =\n    addressing_style = path\n")
            order = clients if run % 2 == 0 else clients[::-1]
            serve_rss = b.RssSampler(proc.pid).__enter__()
            for name, label in order:
                tag += 1
                b.salt([src], tag)
                b.settle()
                loads.append(b.load())
                if name == "chute":
                    env = {k: v for k, v in os.environ.items() if not k.startswith("CHUTE_")}
                    argv = [str(binary), "upload", "--json", "--to", base, "--state-dir", str(d / "state"),
                            "--parallel", str(args.parallel), "--part-size", f"{args.part_mib}M", str(src)]
                else:
                    env = dict(os.environ, AWS_ACCESS_KEY_ID=garage.access_key, AWS_SECRET_ACCESS_KEY=garage.secret_key,
                               AWS_CONFIG_FILE=str(aws_config), AWS_SHARED_CREDENTIALS_FILE=str(work / "none"))
                    argv = [str(aws), "s3", "cp", "--only-show-errors", "--endpoint-url", garage.endpoint,
                            str(src), f"s3://{garage.bucket}/bench/aws-{tag}.bin"]
                try:
                    secs, peak, out = timed(argv, env, label)
                except RuntimeError as e:
                    failures.append(f"run {run + 1}, {label} failed: {e}")
                    b.say(failures[-1])
                    continue
                if name == "chute":
                    line = json.loads(out.splitlines()[-1])
                    if line["size"] != size or line["bytes_sent"] != size:
                        failures.append(f"run {run + 1}, chute upload answered {line}")
                        continue
                results[name].append(args.size_mib / secs)
                peaks[name] = max(peaks[name], peak)
                b.say(f"run {run + 1}: {label}: {args.size_mib / secs:.0f} MiB/s, peak RSS {peak / 1024:.1f} MiB")
            serve_rss.__exit__(None, None, None)
            serve_peak = max(serve_peak, serve_rss.peak_kb)
            proc.stop()
            proc = None
            garage.stop()
            b.rm_rf(garage.dir)
            garage = None
            b.rm_rf(d)

        print(f"\n{args.size_mib} MiB file into Garage, median of {args.runs} runs (wall clock of the command); "
              "peak RSS is the client's process tree, worst run.\n")
        print("| client | MiB/s | runs (MiB/s) | peak RSS (MiB) | chute / this |")
        print("|---|---:|---|---:|---:|")
        for name, label in clients:
            if not results[name]:
                print(f"| {label} | failed | | | n/a |")
                continue
            med = b.median(results[name])
            ratio = f"{b.median(results['chute']) / med:.2f}x" if results["chute"] else "n/a"
            print(f"| {label} | {med:.0f} | {', '.join(f'{x:.0f}' for x in results[name])} | {peaks[name] / 1024:.1f} | {ratio} |")
        print()
        if results["chute"] and results["aws"]:
            r = b.median(results["chute"]) / b.median(results["aws"])
            print(b.goal("chute upload >= 1.0x aws s3 cp", f"{r:.2f}x", r >= 1))
        else:
            print("- goal: not measured (a client failed every run)")
        print(f"- chute serve (signing the parts, store = \"s3\") peak RSS: {serve_peak / 1024:.1f} MiB")
        b.print_notes(notes, failures, loads)
    finally:
        b.clean_up(proc, garage, work)


if __name__ == "__main__":
    main()
