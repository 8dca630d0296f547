"""bench/run's report plumbing: BENCHMARKS.md is BENCHMARKS.in.md with the
generated tables stitched in, a partial run keeps the other suites' tables,
and every suite's goal lines reach the goals table. Runs no benchmark."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))
import benchlib  # noqa: E402

_spec = importlib.util.spec_from_file_location("bench_run", REPO / "bench" / "run.py")
run = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(run)


def test_benchmarks_md_is_the_template_with_its_tables_stitched_in(tmp_path):
    # A hand edit of BENCHMARKS.md (lost at the next --write), or of
    # BENCHMARKS.in.md without `bench/run --stitch`, fails here.
    out = tmp_path / "BENCHMARKS.md"
    out.write_text((REPO / "BENCHMARKS.md").read_text())
    run.write(out, {})
    assert out.read_text() == (REPO / "BENCHMARKS.md").read_text(), \
        "BENCHMARKS.md differs from BENCHMARKS.in.md + its generated tables: edit BENCHMARKS.in.md, run bench/run --stitch"


def test_a_partial_run_keeps_the_other_suites_tables_and_the_prose(tmp_path):
    out = tmp_path / "BENCHMARKS.md"
    run.write(out, {"tus": "tus table\n" + benchlib.goal("local: Chute >= 1.5x rustus", "0.39x", False) + "\n",
                    "cli": "old cli table\n"})
    run.write(out, {"cli": "new cli table\n" + benchlib.goal("chute upload >= 1.0x aws s3 cp", "1.27x", True) + "\n"})
    text = out.read_text()
    assert "tus table" in text and "new cli table" in text and "old cli table" not in text
    assert "_Not measured yet: run `bench/run --only stream --write`._" in text
    # prose from the template survives, each marker became one block
    assert "## tus 1.0 vs rustus and @tus/server" in text and "**What.**" in text
    for name in ("machine", "goals", *run.SUITES):
        assert text.count(f"<!-- begin generated: {name} -->") == 1, name
    goals = text.split("<!-- begin generated: goals -->")[1].split("<!-- end generated: goals -->")[0]
    assert "| tus | local: Chute >= 1.5x rustus | 0.39x | **not met** |" in goals
    assert "| cli | chute upload >= 1.0x aws s3 cp | 1.27x | met |" in goals


def test_goal_lines_of_every_form_reach_the_goals_table():
    body = "\n".join([
        benchlib.goal("Chute >= 2x ImageMagick (`convert -thumbnail`, as the issue names it)", "2.72x", True),
        benchlib.goal("RSS flat (within 10 %) from 1024 to 8192 MiB", "peak 64.5 -> 63.4 MiB (+1.1)", True),
        benchlib.goal("wrk GET /s3/params (Companion-compatible): 0 non-2xx", "3", False),
        "- goal: widget >= 1.0x Uppy's MiB/s: 0.97x, NOT met",  # as bench/widget.mjs prints it
        "- 1-minute load average before each upload: 1.0 2.0",
    ])
    table = run.goals_table({"x": body})
    rows = [r for r in table.splitlines() if r.startswith("| x |")]
    assert rows == [
        "| x | Chute >= 2x ImageMagick (`convert -thumbnail`, as the issue names it) | 2.72x | met |",
        "| x | RSS flat (within 10 %) from 1024 to 8192 MiB | peak 64.5 -> 63.4 MiB (+1.1) | met |",
        "| x | wrk GET /s3/params (Companion-compatible): 0 non-2xx | 3 | **not met** |",
        "| x | widget >= 1.0x Uppy's MiB/s | 0.97x | **not met** |",
    ]


def test_a_failed_suite_shows_in_the_goals_table(tmp_path):
    log = tmp_path / "x.log"
    log.write_text("Traceback (most recent call last):\nRuntimeError: boom\n")
    block = run.section("`bench/x`", 1, "", 3.0, "1.0", "1.0", "abc1234", log)
    assert "RuntimeError: boom" in block
    assert "| x | the suite failed: see its section | - | **failed** |" in run.goals_table({"x": block})


def test_percentile_is_nearest_rank():
    xs = list(range(1, 101))
    assert (benchlib.percentile(xs, 50), benchlib.percentile(xs, 99), benchlib.percentile(xs, 100)) == (50, 99, 100)
    assert benchlib.percentile([7.0], 99) == 7.0
