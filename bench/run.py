#!/usr/bin/env python3
"""Every benchmark in one run: Chute beside every peer, one report.

Runs the suites in turn on this machine, each through its own script
(bench/upload, bench/ingest, bench/signing, bench/widget, bench/tus,
bench/stream, bench/cli, bench/derivatives, bench/load: each still runs
alone and installs its own peers), all measuring one release binary
(CHUTE_BIN, else `cargo build --release -p chute` once, copied to
~/.cache/chute/bench-bin/chute-<commit>). Before them it measures the
machine's own limits (one loopback TCP stream, a sequential disk write
with `dd conv=fdatasync`). Each suite's markdown output becomes a section
of the report, headed by the command that produced it, the commit and the
load average before and after; every `- goal: ...` line of every suite is
collected into one table of goals.

`--write` regenerates BENCHMARKS.md from BENCHMARKS.in.md: the
hand-written prose stays there, and each `<!-- generated: NAME -->` marker
in it is replaced by NAME's section from this run, or, for suites not run
this time (`--only`), by the section BENCHMARKS.md already has.

Usage: bench/run [--runs 5] [--only upload,tus,...] [--skip widget,...] [--quick] [--write] [--output PATH]
       bench/run --stitch   (run nothing; re-stitch BENCHMARKS.md after editing BENCHMARKS.in.md)

`--quick`: one run and small sizes, to check that everything works; its
figures are never to be recorded (so `--quick --write` needs `--output`
elsewhere than BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib as b  # noqa: E402

TEMPLATE = b.REPO / "BENCHMARKS.in.md"
TARGET = b.REPO / "BENCHMARKS.md"

# name -> (title, full arguments with {runs}, quick arguments)
SUITES: dict[str, tuple[str, list[str], list[str]]] = {
    "upload": ("Upload throughput of the embedded store (PUT, POST Object)",
               ["--runs", "{runs}", "--size-mib", "1024"], ["--runs", "1", "--size-mib", "64"]),
    "ingest": ("S3 endpoint ingest: Chute's embedded store vs s3s-fs vs Garage",
               ["--runs", "{runs}", "--size-mib", "1024"], ["--runs", "1", "--size-mib", "64"]),
    "signing": ("Signing API vs Uppy Companion",
                ["--runs", "{runs}", "--duration", "10"], ["--runs", "1", "--duration", "2"]),
    "widget": ("Browser widget vs Uppy",
               ["--runs", "{runs}", "--size-mib", "1024"], ["--runs", "1", "--size-mib", "64"]),
    "tus": ("tus 1.0 vs rustus and @tus/server",
            ["--runs", "{runs}", "--size-mib", "1024", "--chunk-mib", "64"],
            ["--runs", "1", "--size-mib", "128", "--chunk-mib", "32"]),
    "stream": ("Streamed forms into Garage vs s3chunkuploader",
               ["--runs", "{runs}", "--size-mib", "1024", "--big-mib", "8192"],
               ["--runs", "1", "--size-mib", "64", "--big-mib", "0"]),
    "cli": ("`chute upload` vs `aws s3 cp` into Garage",
            ["--runs", "{runs}", "--size-mib", "1024"], ["--runs", "1", "--size-mib", "64"]),
    "derivatives": ("Image derivatives vs ImageMagick",
                    ["--runs", "{runs}", "--files", "24"], ["--runs", "1", "--files", "4"]),
    "load": ("Load: 1,000 concurrent uploads against one instance, wrk on the signing endpoints",
             ["--duration", "300", "--concurrency", "1000"],
             ["--duration", "20", "--concurrency", "100", "--wrk-duration", "2"]),
}
GOAL = re.compile(r"^- goal(?: (?P<scope>[^:]+))?: (?P<what>.+?): (?P<figure>[^,:]+), (?P<result>met|NOT met)\s*$", re.M)
BLOCK = re.compile(r"<!-- begin generated: (?P<name>[\w-]+) -->\n(?P<body>.*?)<!-- end generated: (?P=name) -->", re.S)
MARKER = re.compile(r"^<!-- generated: (?P<name>[\w-]+) -->$", re.M)


def machine_section(args, work: Path, head: dict[str, str]) -> str:
    """The machine's own limits, measured now: loopback and disk."""
    runs = 1 if args.quick else args.runs
    mib = 128 if args.quick else 1024
    loop, disk = [], []
    for _ in range(runs):
        loop.append(b.loopback_mibps(mib))
        disk.append(b.disk_mibps(work, mib))
        b.say(f"machine: loopback {loop[-1]:.0f} MiB/s, disk {disk[-1]:.0f} MiB/s")
    return "\n".join([
        f"{head['cores']} cores ({head['cpu']}), {head['memory']} RAM, kernel {head['kernel']}; "
        f"commit {head['commit']}; load average {head['load']} at the start.",
        "",
        f"| limit ({mib} MiB, median of {runs}) | MiB/s | runs |",
        "|---|---:|---|",
        f"| loopback: one TCP stream, Python sender to a Python reader | {b.median(loop):.0f} | "
        f"{', '.join(f'{x:.0f}' for x in loop)} |",
        f"| disk: `dd if=/dev/zero bs=1M count={mib} conv=fdatasync` into {work.parent} | {b.median(disk):.0f} | "
        f"{', '.join(f'{x:.0f}' for x in disk)} |",
        "",
    ])


def run_suite(name: str, argv: list[str], env: dict[str, str], log: Path) -> tuple[int, str, float]:
    """Runs bench/NAME with argv: (exit status, its stdout, seconds). Its
    stderr goes to ours and to log."""
    t0 = time.monotonic()
    with open(log, "w") as err:
        p = subprocess.Popen([str(b.REPO / "bench" / name), *argv], cwd=b.REPO, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, start_new_session=True)
        out_chunks: list[str] = []

        def pump() -> None:
            for line in p.stderr:
                sys.stderr.write(f"[{name}] {line}")
                err.write(line)

        t = threading.Thread(target=pump, daemon=True)
        t.start()
        try:
            out_chunks.append(p.stdout.read())
            p.wait()
        except BaseException:
            os.killpg(p.pid, 15)
            p.wait()
            raise
        t.join()
    return p.returncode, "".join(out_chunks), time.monotonic() - t0


def section(cmd: str, status: int, out: str, secs: float, before: str, after: str, commit: str, log: Path) -> str:
    when = time.strftime("%Y-%m-%d", time.gmtime())
    lines = [f"_Generated {when} by {cmd} at commit {commit}, in {secs / 60:.1f} min; load average {before} "
             f"before, {after} after._", ""]
    if status != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-15:]
        lines += [f"**The suite failed (exit status {status}).** The end of its log:", "", "```",
                  *tail, "```", ""]
    lines += [out.strip(), ""]
    return "\n".join(lines)


def goals_table(blocks: dict[str, str]) -> str:
    rows = []
    for name, body in blocks.items():
        if "**The suite failed" in body:
            rows.append(f"| {name} | the suite failed: see its section | - | **failed** |")
        for m in GOAL.finditer(body):
            what = f"{m['scope']}: {m['what']}" if m["scope"] else m["what"]
            rows.append(f"| {name} | {what} | {m['figure'].strip()} | {'met' if m['result'] == 'met' else '**not met**'} |")
    if not rows:
        return "No goals measured.\n"
    return "\n".join(["| suite | goal | measured | result |", "|---|---|---|---|", *rows, ""])


def stitch(template: str, blocks: dict[str, str]) -> str:
    """The template with each `<!-- generated: NAME -->` replaced by NAME's
    block between begin/end markers (the goals table as `goals`)."""
    def sub(m: re.Match) -> str:
        name = m["name"]
        body = blocks.get(name) or f"_Not measured yet: run `bench/run --only {name} --write`._\n"
        return f"<!-- begin generated: {name} -->\n{body.rstrip()}\n<!-- end generated: {name} -->"
    return MARKER.sub(sub, template)


def write(output: Path, blocks: dict[str, str]) -> None:
    """Regenerates output from BENCHMARKS.in.md: this run's blocks, and for
    suites not run the blocks output already has; the goals table from all."""
    old = {m["name"]: m["body"] for m in BLOCK.finditer(output.read_text())} if output.exists() else {}
    merged = dict(old)
    merged.update(blocks)
    merged["goals"] = goals_table({k: v for k, v in merged.items() if k in SUITES and "Not measured yet" not in v})
    template = TEMPLATE.read_text()
    missing = [n for n in merged if n not in {m["name"] for m in MARKER.finditer(template)}]
    if missing:
        b.say(f"BENCHMARKS.in.md has no marker for {', '.join(missing)}; those sections are left out")
    text = stitch(template, merged)
    banner = "<!-- Generated by `bench/run --write` from BENCHMARKS.in.md: edit that file, not this one. -->\n"
    output.write_text(banner + text)
    b.say(f"wrote {output}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5, help="runs per suite; medians are reported (default 5)")
    ap.add_argument("--only", help="comma-separated suites: " + ",".join(SUITES) + " (machine always runs)")
    ap.add_argument("--skip", help="comma-separated suites to leave out")
    ap.add_argument("--quick", action="store_true", help="one run, small sizes: a smoke test, never recorded")
    ap.add_argument("--write", action="store_true", help="regenerate BENCHMARKS.md (or --output) from BENCHMARKS.in.md")
    ap.add_argument("--output", type=Path, default=TARGET, help="where --write writes (default BENCHMARKS.md)")
    ap.add_argument("--stitch", action="store_true",
                    help="run nothing: rewrite --output from BENCHMARKS.in.md and the tables it already has")
    args = ap.parse_args()
    if args.stitch:
        write(args.output, {})
        return
    b.exit_on_sigterm()
    chosen = list(SUITES)
    if args.only:
        chosen = [s.strip() for s in args.only.split(",") if s.strip()]
    if args.skip:
        chosen = [s for s in chosen if s not in {x.strip() for x in args.skip.split(",")}]
    unknown = [s for s in chosen if s not in SUITES]
    if unknown:
        sys.exit(f"bench/run: unknown suite(s) {', '.join(unknown)}; known: {', '.join(SUITES)}")
    if args.quick and args.write and args.output.resolve() == TARGET.resolve():
        sys.exit("bench/run: --quick figures are for smoke tests, not BENCHMARKS.md; give --output elsewhere")
    if args.runs < 5 and args.write and not args.quick and args.output.resolve() == TARGET.resolve():
        sys.exit("bench/run: recorded figures are medians of at least 5 runs (--runs >= 5)")

    binary = b.release_binary()
    env = dict(os.environ, CHUTE_BIN=str(binary))
    head = b.machine()
    base_dir = Path(os.environ.get("BENCH_DIR", tempfile.gettempdir()))
    work = Path(tempfile.mkdtemp(prefix="chute-bench-run-", dir=base_dir))
    flags = " --quick" if args.quick else f" --runs {args.runs}"
    blocks: dict[str, str] = {}
    t_all = time.monotonic()
    try:
        b.say(f"measuring {binary} ({head['commit']}); suites: {', '.join(chosen)}")
        blocks["machine"] = (f"_Generated {time.strftime('%Y-%m-%d', time.gmtime())} by `bench/run{flags}`._\n\n"
                             + machine_section(args, work, head))
        for name in chosen:
            title, full, quick = SUITES[name]
            argv = [a.replace("{runs}", str(args.runs)) for a in (quick if args.quick else full)]
            cmd = f"bench/{name} {shlex.join(argv)}"
            b.say(f"--- {name}: CHUTE_BIN={binary} {cmd}")
            before = b.loadavg()
            status, out, secs = run_suite(name, argv, env, work / f"{name}.log")
            after = b.loadavg()
            b.say(f"--- {name}: exit {status} after {secs / 60:.1f} min")
            blocks[name] = section(f"`bench/run{flags} --only {name}`, which ran `{cmd}`", status, out, secs,
                                   before, after, head["commit"], work / f"{name}.log")
        end = b.loadavg()
        blocks["machine"] += f"\nLoad average {end} at the end; the whole run took {(time.monotonic() - t_all) / 60:.0f} min.\n"

        report = ["# Chute benchmarks: one run", "", f"Command: `bench/run{flags}"
                  f"{' --only ' + ','.join(chosen) if args.only or args.skip else ''}`, {head['date']}.", "",
                  "## Machine", "", blocks["machine"], "## Goals", "",
                  goals_table({k: v for k, v in blocks.items() if k != "machine"})]
        for name in chosen:
            report += [f"## {SUITES[name][0]}", "", blocks[name]]
        text = "\n".join(report)
        print(text)

        if args.write:
            write(args.output, blocks)
    finally:
        b.rm_rf(work)


if __name__ == "__main__":
    main()
