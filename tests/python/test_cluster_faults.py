"""Crashes in the local cluster (deploy/local-cluster): chute instances
killed with SIGKILL under load, and a Garage node stopped mid-upload.

Clients go through nginx and behave like real ones: they retry what failed
with a connection error or a 5xx; resumable uploads resume (tus: HEAD, then
PATCH from the offset; API multipart: GET the upload, sign and send the
missing parts); the others start again. Afterwards every acknowledged
upload (a receipt) is in the store with its SHA-256, nothing partial is
visible, and every upload finished. The seed is printed (and set with
CHUTE_CRASH_SEED) so a failing run can be replayed.
"""

from __future__ import annotations

import hashlib
import os
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from clusterutil import Resilient, Stats
from conftest import MiB

pytestmark = pytest.mark.crash

SEED = int(os.environ.get("CHUTE_CRASH_SEED", "20261121"))
KINDS = tuple(os.environ.get("CHUTE_CRASH_KINDS", "tus,multipart,put,post_form,stream").split(","))
WORKERS = int(os.environ.get("CHUTE_CRASH_WORKERS", "200"))
CYCLES = 20
# Hang guard for the whole run (the kills take about a minute and a half).
GUARD = 330
# Past the guard a client raises before its next request, but one already
# sent may run to its own timeout (Resilient: 60 s): a worker is stuck only
# if it is still uploading after that.
REQUEST_GRACE = 70


def size_for(rng: random.Random, kind: str) -> int:
    """0 B to a few MiB, mostly small; one in ten multipart, tus and
    streamed uploads above 5 MiB, so they span two parts (parts are at
    least 5 MiB)."""
    r = rng.random()
    if r < 0.06 and kind != "multipart":
        return 0
    if r < 0.7:
        return rng.randrange(1, 256 * 1024)
    if r < 0.9 or kind in ("put", "post_form"):
        return rng.randrange(256 * 1024, 2 * MiB)
    return rng.randrange(5 * MiB + 1, 6 * MiB)


# Chute's own prefixes: its state, and the create-only probe each start writes.
OWN = (".chute/", ".chute-probe/")


def unacknowledged(cluster, records) -> tuple[list[str], list[str]]:
    """Objects in the bucket that no receipt names (of this test or another
    cluster test), outside Chute's own prefixes: (complete, partial).

    A request killed after its object was written but before its answer
    left leaves a complete object its client was never told about (the
    client starts again under a new id; the reaper expires the first after
    the upload and receipt TTLs). Retries send the same bytes under the
    same file name, so such an object must equal the acknowledged upload of
    that name byte for byte; anything else is partial."""
    acknowledged = {r["key"] for r in records} | cluster.known
    by_name = {r["name"]: r for r in records}
    complete, partial = [], []
    for key in cluster.all_keys():
        if key.startswith(OWN) or key in acknowledged:
            continue
        r = by_name.get(key.rsplit("/", 1)[-1])
        if r is not None and cluster.sha256_of(key) == (r["size"], r["sha256"]):
            complete.append(key)
        else:
            partial.append(key)
    return complete, partial


@pytest.mark.timeout(GUARD + REQUEST_GRACE + 180)
def test_kill_instances_during_concurrent_mixed_uploads(cluster):
    print(f"seed {SEED} (replay with CHUTE_CRASH_SEED={SEED})")
    cluster.ensure_all_up()
    stats = Stats()
    deadline = time.monotonic() + GUARD
    done = threading.Event()
    lock = threading.Lock()
    records: list[dict] = []
    failures: list[str] = []
    kills: list[tuple[float, int]] = []
    restart_seconds: list[float] = []
    started = time.monotonic()

    def worker(i: int) -> None:
        rng = random.Random(SEED * 1000 + i)
        client = Resilient(cluster, stats, deadline, rng)
        j = 0
        # Each worker keeps uploading, with pauses (the machine has 2 cores
        # for 7 servers and 200 clients), until the last kill cycle is over.
        while j == 0 or not done.is_set():
            time.sleep(rng.uniform(1.0, 4.0))
            kind = KINDS[(i + j) % len(KINDS)]
            data = rng.randbytes(size_for(rng, kind))
            name = f"crash-{i}-{j}.bin"
            try:
                receipt, key = getattr(client, kind)(name, data)
            except Exception as e:  # noqa: BLE001 - every failure is reported below
                with lock:
                    failures.append(f"{kind} {name} ({len(data)} B): {type(e).__name__}: {e}")
                return
            with lock:
                records.append({"kind": kind, "name": name, "key": key, "size": len(data), "receipt": receipt,
                                "sha256": hashlib.sha256(data).hexdigest()})
            j += 1

    def killer() -> None:
        """20 cycles: a random moment, a random running instance killed,
        restarted after a random pause. A restart undoes the killed
        process's streamed forms before it serves, which takes a while under
        load, so restarts run in the background and the next kill picks
        among the instances serving; one is always left serving."""
        rng = random.Random(SEED)
        restarts: list[threading.Thread] = []
        down: set[int] = set()

        def restart(n: int, pause: float) -> None:
            time.sleep(pause)
            begun = time.monotonic()
            try:
                cluster.run("start-instance", str(n), timeout=GUARD)
            except Exception as e:  # noqa: BLE001
                with lock:
                    failures.append(f"restarting instance {n}: {e}")
            with lock:
                down.discard(n)
                restart_seconds.append(time.monotonic() - begun)

        try:
            for _ in range(CYCLES):
                time.sleep(rng.uniform(0.3, 1.5))
                while True:
                    with lock:
                        up = [n for n in (1, 2, 3) if n not in down]
                    if len(up) >= 2:
                        break
                    if time.monotonic() > deadline:
                        raise TimeoutError("hang guard: no instance came back to kill another")
                    time.sleep(0.2)
                n = rng.choice(up)
                with lock:
                    down.add(n)
                kills.append((time.monotonic() - started, n))
                cluster.run("kill-instance", str(n))
                t = threading.Thread(target=restart, args=(n, rng.uniform(0.0, 0.5)), daemon=True)
                t.start()
                restarts.append(t)
            for t in restarts:
                t.join(max(1.0, deadline - time.monotonic()))
        except Exception as e:  # noqa: BLE001
            with lock:
                failures.append(f"killer: {e}")
        finally:
            done.set()

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(WORKERS)]
    for t in threads:
        t.start()
    k = threading.Thread(target=killer, daemon=True)
    k.start()
    k.join(GUARD)
    for t in threads:
        t.join(max(1.0, deadline + REQUEST_GRACE - time.monotonic()))
    elapsed = time.monotonic() - started
    stuck = sum(t.is_alive() for t in threads)
    by_kind = {kind: sum(r["kind"] == kind for r in records) for kind in KINDS}
    print(f"{len(records)} uploads acknowledged ({by_kind}), {len(kills)} kills, {elapsed:.0f} s, "
          f"{sum(r['size'] for r in records) / MiB:.0f} MiB; retries and resumes: {dict(sorted(stats.counts.items()))}")
    print(f"kills (at s, instance): {[(round(t, 1), n) for t, n in kills]}; restarts took "
          f"{min(restart_seconds, default=0):.1f} to {max(restart_seconds, default=0):.1f} s")
    assert not failures, f"{len(failures)} uploads failed:\n" + "\n".join(failures[:20]) + "\n" + cluster.logs(15)
    assert stuck == 0, f"{stuck} workers still uploading at the hang guard"
    assert len(kills) == CYCLES
    assert len(records) >= WORKERS

    # Every acknowledged upload: its receipt verifies, its bytes are there.
    def mismatch(r: dict) -> str | None:
        assert cluster.verify_receipt(r["receipt"])["key"] == r["key"]
        got = cluster.sha256_of(r["key"])
        return None if got == (r["size"], r["sha256"]) else f"{r['kind']} {r['key']}: stored {got}, sent {(r['size'], r['sha256'])}"

    with ThreadPoolExecutor(16) as pool:
        bad = [m for m in pool.map(mismatch, records) if m]
    assert not bad, "\n".join(bad)
    cluster.remember(*(r["key"] for r in records))
    # Nothing partial: killed streamed forms are undone by their instance's
    # restart; an object without a receipt is a complete one.
    complete, partial = unacknowledged(cluster, records)
    print(f"{len(complete)} complete objects whose answer a kill cut off (left to the reaper)")
    assert not partial, f"partial objects no upload acknowledged: {partial[:20]}"


@pytest.mark.timeout(300)
def test_a_garage_node_stopped_mid_upload(cluster):
    """Replication factor 3: with one node of three stopped, uploads in
    flight carry on (resuming what the stop cut) and new ones succeed."""
    cluster.ensure_all_up()
    rng = random.Random(SEED + 1)
    stats = Stats()
    deadline = time.monotonic() + 200
    lock = threading.Lock()
    records: list[dict] = []
    failures: list[str] = []

    def upload(i: int, kind: str, size: int) -> None:
        local = random.Random(SEED * 7 + i)
        client = Resilient(cluster, stats, deadline, local)
        data = local.randbytes(size)
        try:
            receipt, key = getattr(client, kind)(f"garage-{i}.bin", data)
        except Exception as e:  # noqa: BLE001
            with lock:
                failures.append(f"{kind} garage-{i}.bin: {type(e).__name__}: {e}")
            return
        with lock:
            records.append({"kind": kind, "key": key, "size": size, "receipt": receipt,
                            "sha256": hashlib.sha256(data).hexdigest()})

    # In flight: bigger uploads, stopped in the middle.
    first = [threading.Thread(target=upload, args=(i, KINDS[i % len(KINDS)], rng.randrange(3 * MiB, 12 * MiB)), daemon=True)
             for i in range(15)]
    for t in first:
        t.start()
    time.sleep(1.5)
    victim = rng.randint(1, 3)
    cluster.run("stop-garage", str(victim))
    try:
        # New uploads while the node is down.
        second = [threading.Thread(target=upload, args=(100 + i, KINDS[i % len(KINDS)], rng.randrange(0, 3 * MiB)), daemon=True)
                  for i in range(15)]
        for t in second:
            t.start()
        for t in first + second:
            t.join(max(1.0, deadline - time.monotonic()))
    finally:
        cluster.run("start-garage", str(victim))
    print(f"garage {victim} stopped: {len(records)} uploads, retries and resumes: {dict(sorted(stats.counts.items()))}")
    assert not failures, "\n".join(failures) + "\n" + cluster.logs(15)
    assert len(records) == 30
    for r in records:
        assert cluster.sha256_of(r["key"]) == (r["size"], r["sha256"]), r
    cluster.remember(*(r["key"] for r in records))
    # Back with three nodes: the restarted node serves again.
    after = Resilient(cluster, stats, time.monotonic() + 60, rng)
    data = os.urandom(MiB)
    receipt, key = after.put("after.bin", data)
    cluster.remember(key)
    for url in cluster.garage_urls:
        assert cluster.client(url).head_object(Bucket=cluster.bucket, Key=key)["ContentLength"] == MiB
