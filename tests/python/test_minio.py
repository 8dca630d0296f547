"""minio-py against the embedded endpoint: put/get/stat/list/remove and a
presigned_post_policy form uploaded with requests."""

from __future__ import annotations

import datetime as dt
import io
import os

import requests
from minio import Minio
from minio.datatypes import PostPolicy
from minio.error import S3Error
import pytest


@pytest.fixture
def mc(chute):
    return Minio(f"127.0.0.1:{chute.s3_port}", access_key=chute.access_key, secret_key=chute.secret_key, secure=False, region="us-east-1")


def test_minio_put_get_stat_list_remove(mc, bucket, prefix):
    data = os.urandom(200_000)
    res = mc.put_object(bucket, prefix + "m.bin", io.BytesIO(data), len(data), content_type="application/x-m", metadata={"x-amz-meta-who": "minio"})
    assert res.etag
    resp = mc.get_object(bucket, prefix + "m.bin")
    try:
        assert resp.read() == data
    finally:
        resp.close()
        resp.release_conn()
    st = mc.stat_object(bucket, prefix + "m.bin")
    assert st.size == len(data) and st.content_type == "application/x-m"
    assert [o.object_name for o in mc.list_objects(bucket, prefix=prefix, recursive=True)] == [prefix + "m.bin"]
    assert mc.bucket_exists(bucket)
    mc.remove_object(bucket, prefix + "m.bin")
    with pytest.raises(S3Error) as e:
        mc.stat_object(bucket, prefix + "m.bin")
    assert e.value.code in ("NoSuchKey", "ResponseCode") or "404" in str(e.value)


def test_minio_multipart_put(mc, bucket, prefix):
    data = os.urandom(11 * 1024 * 1024)
    mc.put_object(bucket, prefix + "mp.bin", io.BytesIO(data), -1, part_size=5 * 1024 * 1024)
    resp = mc.get_object(bucket, prefix + "mp.bin")
    try:
        assert resp.read() == data
    finally:
        resp.close()
        resp.release_conn()


def test_minio_presigned_post_policy(chute, mc, s3, bucket, prefix):
    policy = PostPolicy(bucket, dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=5))
    policy.add_starts_with_condition("key", prefix + "mp/")
    policy.add_content_length_range_condition(1, 1024 * 1024)
    form = mc.presigned_post_policy(policy)
    form["key"] = prefix + "mp/form.txt"
    url = f"{chute.endpoint}/{bucket}"
    r = requests.post(url, data=form, files={"file": ("form.txt", b"minio form")}, timeout=60)
    assert r.status_code == 204, r.text
    assert s3.get_object(Bucket=bucket, Key=prefix + "mp/form.txt")["Body"].read() == b"minio form"
    form["key"] = prefix + "elsewhere.txt"
    r = requests.post(url, data=form, files={"file": ("form.txt", b"minio form")}, timeout=60)
    assert r.status_code == 403, r.text
