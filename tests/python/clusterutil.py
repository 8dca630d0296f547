"""The local cluster of `deploy/local-cluster` (3 Garage nodes, 3 `chute
serve` instances, nginx in front of both) for test_cluster.py and
test_cluster_faults.py, and upload clients that retry and resume the way a
real client would when an instance dies under them.

The `cluster` fixture (conftest.py) starts one cluster per session on free
ports; every test goes through nginx unless it names an instance.
"""

from __future__ import annotations

import os
import random
import socket
import subprocess
import threading
import time
from pathlib import Path

import boto3
import jwt
import requests
from botocore.config import Config

from conftest import OCTETS, REPO, TUS, MiB, bucket_keys, grant, object_sha256, tus_metadata

SCRIPT = REPO / "deploy" / "local-cluster"
# Statuses a client retries: the instance died (nginx's 502), or is busy.
RETRY = {500, 502, 503, 504}


def _ports_free(base: int) -> bool:
    ports = [base, base + 1] + [base + off + n for off in (10, 20, 30, 40, 50) for n in (1, 2, 3)]
    for p in ports:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", p))
            except OSError:
                return False
    return True


def free_base_port() -> int:
    """A base port whose whole block (base .. base+53) is free, below the
    kernel's ephemeral range."""
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(12000, 32000, 100)
        if _ports_free(base):
            return base
    raise RuntimeError("no free block of 60 loopback ports between 12000 and 32000")


class Cluster:
    """A running deploy/local-cluster: its URLs, keys and process control."""

    def __init__(self, workdir: Path, chute_bin: Path):
        self.dir = workdir
        self.base = free_base_port()
        self.env_in = {"CHUTE_BIN": str(chute_bin)}
        # Keys of every object a test was acknowledged for (receipts) or
        # promoted: anything else outside `.chute/` is a leftover. Kept
        # across a restart of the whole cluster.
        self.known: set[str] = set()
        self.known_lock = threading.Lock()

    def start(self) -> None:
        out = self.run("start", timeout=600)
        self.env: dict[str, str] = {}
        for line in out.splitlines():
            if line.startswith("export ") and "=" in line:
                k, v = line[len("export "):].split("=", 1)
                self.env[k] = v.strip().strip("'\"")
        self.lb = self.env["CHUTE_URL"]
        self.s3_url = self.env["CLUSTER_S3_URL"]
        self.instances = self.env["CLUSTER_INSTANCE_URLS"].split()
        self.garage_urls = self.env["CLUSTER_GARAGE_S3_URLS"].split()
        self.bucket = self.env["CLUSTER_BUCKET"]
        self.kid, self.secret = self.env["CLUSTER_GRANT_SECRET"].split(":", 1)
        # One client for every thread (boto3 clients are thread-safe, their
        # creation from the default session is not).
        self.s3 = self.client()

    def run(self, *args: str, timeout: float = 180) -> str:
        env = dict(os.environ, **self.env_in)
        cmd = [str(SCRIPT), "--base-port", str(self.base), args[0], str(self.dir), *args[1:]]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
        if p.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} exited {p.returncode}:\n{p.stdout}\n{p.stderr}\n{self.logs()}")
        return p.stdout

    def logs(self, lines: int = 40) -> str:
        text = ""
        for f in sorted((self.dir / "logs").glob("*.log")) if (self.dir / "logs").exists() else []:
            if f.name == "nginx-access.log":
                continue
            tail = f.read_text(errors="replace").splitlines()[-lines:]
            text += f"--- {f.name} ---\n" + "\n".join(tail) + "\n"
        return text

    def remember(self, *keys: str) -> None:
        with self.known_lock:
            self.known.update(keys)

    def grant(self, **claims) -> str:
        return grant(key=(self.kid, self.secret), ttl=3600, **claims)

    def verify_receipt(self, receipt: str) -> dict:
        return jwt.decode(receipt, self.secret, algorithms=["HS256"], audience="chute-receipt")

    def client(self, endpoint: str | None = None):
        return boto3.client(
            "s3",
            endpoint_url=endpoint or self.s3_url,
            region_name=self.env["CLUSTER_REGION"],
            aws_access_key_id=self.env["CLUSTER_ACCESS_KEY"],
            aws_secret_access_key=self.env["CLUSTER_SECRET_KEY"],
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"},
                          retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=5, read_timeout=120),
        )

    def sha256_of(self, key: str) -> tuple[int, str]:
        return object_sha256(self.s3, self.bucket, key)

    def all_keys(self) -> set[str]:
        return bucket_keys(self.s3, self.bucket)

    def ensure_all_up(self) -> None:
        """Starts any instance or Garage node a failed test left down."""
        status = self.run("status")
        for line in status.splitlines():
            name, state = line.split()[:2]
            if state == "stopped" and name.startswith("chute-"):
                self.run("start-instance", name.split("-")[1])
            elif state == "stopped" and name.startswith("garage-"):
                self.run("start-garage", name.split("-")[1])

    def stop(self) -> None:
        self.run("stop", timeout=120)


# ------------------------------------------------------------------ clients that survive crashes


class Flaky(Exception):
    """A failure a client retries (connection lost, 5xx from nginx)."""


class Stats:
    """Counts retries and resumes across client threads."""

    def __init__(self):
        self.lock = threading.Lock()
        self.counts: dict[str, int] = {}

    def add(self, what: str, n: int = 1) -> None:
        with self.lock:
            self.counts[what] = self.counts.get(what, 0) + n


class Resilient:
    """Upload clients for one kind each, going through nginx, that retry
    what a real client retries: connection errors and 5xx. Resumable kinds
    resume (tus: HEAD then PATCH from the offset; multipart: GET the upload
    for the parts held, sign and send the missing ones); the others start
    again. Each returns (receipt, key). `deadline` (monotonic) is the hang
    guard: past it a client raises."""

    def __init__(self, cluster: Cluster, stats: Stats, deadline: float, rng: random.Random):
        self.c = cluster
        self.stats = stats
        self.deadline = deadline
        self.rng = rng
        self.session = requests.Session()

    # -- plumbing
    def _guard(self, what: str) -> None:
        if time.monotonic() > self.deadline:
            raise TimeoutError(f"hang guard: {what} still not done")

    def _call(self, method: str, url: str, ok: set[int], what: str, retry_on: set[int] = RETRY, **kw) -> requests.Response:
        """One request retried until its status is in `ok`; other statuses
        outside `retry_on` fail the upload."""
        kw.setdefault("timeout", 60)
        last = "nothing yet"
        while True:
            self._guard(f"{what} ({method} {url}; last answer: {last})")
            try:
                r = self.session.request(method, url, **kw)
            except requests.RequestException as e:
                last = repr(e)[:200]
                self.stats.add(f"retry:{what}")
                time.sleep(0.2)
                continue
            if r.status_code in ok:
                return r
            if r.status_code in retry_on:
                last = f"{r.status_code} {r.text[:200]}"
                self.stats.add(f"retry:{what}")
                time.sleep(0.2)
                continue
            raise AssertionError(f"{what}: {method} {url} answered {r.status_code}: {r.text[:300]}")

    def _api(self, method: str, path: str, token: str | None, ok: set[int], what: str, **kw) -> requests.Response:
        headers = kw.pop("headers", {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return self._call(method, f"{self.c.lb}{path}", ok, what, headers=headers, **kw)

    def _create(self, name: str, data: bytes, method: str) -> dict:
        body = {"filename": name, "size": len(data), "type": "application/octet-stream", "method": method}
        return self._api("POST", "/api/uploads", self.c.grant(), {201}, f"create {method}", json=body).json()

    def _complete(self, created: dict) -> tuple[str, str]:
        r = self._api("POST", f"/api/uploads/{created['id']}/complete", created["token"], {200}, "complete")
        return r.json()["receipt"], r.json()["object"]["key"]

    # -- kinds
    def post_form(self, name: str, data: bytes) -> tuple[str, str]:
        c = self._create(name, data, "post")
        form = c["post"]
        self._call("POST", form["url"], {200, 201, 204}, "post form", data=form["fields"],
                   files={"file": (name, data, form["fields"].get("content-type", "application/octet-stream"))})
        return self._complete(c)

    def put(self, name: str, data: bytes) -> tuple[str, str]:
        c = self._create(name, data, "put")
        put = c["put"]
        headers = {k: v for k, v in put["headers"].items() if k.lower() != "content-length"}
        self._call("PUT", put["url"], {200}, "presigned put", data=data, headers=headers)
        return self._complete(c)

    def multipart(self, name: str, data: bytes) -> tuple[str, str]:
        while True:
            done = self._multipart_once(name, data)
            if done is not None:
                return done
            # The store lost the multipart upload (Garage 2.5, once, after
            # a CompleteMultipartUpload cut off by a kill): start again.
            self.stats.add("restart:multipart (the store lost the multipart upload)")

    def _multipart_once(self, name: str, data: bytes) -> tuple[str, str] | None:
        c = self._create(name, data, "multipart")
        mp = c["multipart"]
        size = mp["part_size"]
        urls = {p["number"]: p for p in mp["parts"]}
        todo = list(range(1, mp["part_count"] + 1))
        while True:
            for n in todo:
                p = urls[n]
                body = data[(n - 1) * size:(n - 1) * size + p["size"]]
                try:
                    r = self.session.put(p["url"], data=body, headers=p.get("headers") or {}, timeout=60)
                    if r.status_code == 404 and "NoSuchUpload" in r.text:
                        return None
                    if r.status_code != 200:
                        assert r.status_code in RETRY, f"part {n}: {r.status_code} {r.text[:300]}"
                        raise Flaky()
                except (requests.RequestException, Flaky):
                    self.stats.add("retry:part")
                    break
            # Resume from what the store holds: any instance answers.
            st = self._api("GET", f"/api/uploads/{c['id']}", c["token"], {200}, "multipart status").json()
            if st["state"] == "uploaded":  # joined by a completion cut short
                return self._complete(c)
            if st["state"] == "gone":
                return None
            assert st["state"] == "uploading", f"multipart upload {c['id']} is {st['state']}"
            held = {p["number"] for p in st.get("parts", [])}
            todo = [n for n in range(1, mp["part_count"] + 1) if n not in held]
            if not todo:
                r = self._api("POST", f"/api/uploads/{c['id']}/complete", c["token"], {200, 409}, "complete")
                if r.status_code == 200:
                    return r.json()["receipt"], r.json()["object"]["key"]
                # A completion cut off by a kill inside Garage's
                # CompleteMultipartUpload: the store lists fewer parts than
                # a moment ago (resume them), or lost the multipart upload
                # and has no object (start again).
                code = r.json()["error"]["code"]
                if code == "not_uploaded":
                    return None
                assert code == "parts_incomplete", r.text
                self.stats.add("resume:multipart after 409")
                continue
            self.stats.add("resume:multipart")
            signed = self._api("POST", f"/api/uploads/{c['id']}/parts", c["token"], {200}, "sign parts",
                               json={"parts": todo}).json()
            urls.update({p["number"]: p for p in signed["parts"]})

    def tus(self, name: str, data: bytes) -> tuple[str, str]:
        h = {**TUS, "Authorization": f"Bearer {self.c.grant()}", "Upload-Length": str(len(data)),
             "Upload-Metadata": tus_metadata(name)}
        r = self._call("POST", f"{self.c.lb}/files/", {201}, "tus create", headers=h)
        url = self.c.lb + r.headers["Location"]
        if "Chute-Receipt" in r.headers:  # an empty upload is complete at creation
            receipt = r.headers["Chute-Receipt"]
            return receipt, self.c.verify_receipt(receipt)["key"]
        at = 0
        while True:
            chunk = self.rng.choice([256 * 1024, 700 * 1024, 2 * MiB])
            try:
                r = self.session.patch(url, data=data[at:at + chunk], timeout=60,
                                       headers={**TUS, "Content-Type": OCTETS, "Upload-Offset": str(at)})
            except requests.RequestException:
                r = None
            if r is not None and r.status_code == 204:
                at = int(r.headers["Upload-Offset"])
                if "Chute-Receipt" in r.headers:
                    receipt = r.headers["Chute-Receipt"]
                    return receipt, self.c.verify_receipt(receipt)["key"]
                continue
            if r is not None and r.status_code not in RETRY | {409, 423}:
                raise AssertionError(f"tus PATCH {url} at {at}: {r.status_code} {r.text[:300]}")
            # Resume: ask any instance where the upload stands.
            self.stats.add("resume:tus")
            time.sleep(0.2)
            # 423: the lease of a killed writer, until it runs out (two leases).
            head = self._call("HEAD", url, {200}, "tus head", retry_on=RETRY | {423}, headers=TUS)
            at = int(head.headers["Upload-Offset"])
            if "Chute-Receipt" in head.headers:
                receipt = head.headers["Chute-Receipt"]
                return receipt, self.c.verify_receipt(receipt)["key"]

    def stream(self, name: str, data: bytes) -> tuple[str, str]:
        r = self._call("POST", f"{self.c.lb}/api/stream", {201}, "stream",
                       headers={"Authorization": f"Bearer {self.c.grant()}"},
                       data={"note": "crash"}, files={"file": (name, data, "application/octet-stream")})
        f = r.json()["files"][0]
        return f["receipt"], f["object"]["key"]
