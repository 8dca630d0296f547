"""boto3 against the embedded S3 endpoint: the REST subset Chute promises
(DESIGN.md section 4), with boto3's default checksums (CRC32 trailers)."""

from __future__ import annotations

import hashlib
import io
import os
import uuid

import pytest
import requests
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

MiB = 1024 * 1024


def err(exc: ClientError) -> tuple[int, str]:
    return exc.response["ResponseMetadata"]["HTTPStatusCode"], exc.response["Error"]["Code"]


def test_put_get_head_delete(s3, bucket, prefix):
    key = prefix + "hello.txt"
    body = b"hello chute\n"
    put = s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="text/plain")
    assert put["ETag"] == f'"{hashlib.md5(body).hexdigest()}"'
    got = s3.get_object(Bucket=bucket, Key=key)
    assert got["Body"].read() == body
    assert got["ContentType"] == "text/plain"
    assert got["ContentLength"] == len(body)
    assert got["ETag"] == put["ETag"]
    head = s3.head_object(Bucket=bucket, Key=key)
    assert head["ContentLength"] == len(body)
    assert head["ETag"] == put["ETag"]
    s3.delete_object(Bucket=bucket, Key=key)
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key=key)
    assert err(e.value)[0] == 404
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key=key)
    assert err(e.value) == (404, "NoSuchKey")
    # Deleting a missing key is not an error in S3.
    s3.delete_object(Bucket=bucket, Key=key)


def test_unicode_and_space_keys(s3, bucket, prefix):
    keys = [prefix + "a b/c+d.txt", prefix + "ünï cödé/ファイル.bin", prefix + "x(1)~!$'*,;=@.txt"]
    for k in keys:
        s3.put_object(Bucket=bucket, Key=k, Body=k.encode())
    listed = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]]
    assert sorted(listed) == sorted(keys)
    for k in keys:
        assert s3.get_object(Bucket=bucket, Key=k)["Body"].read() == k.encode()


def test_zero_byte_object(s3, bucket, prefix):
    key = prefix + "empty"
    s3.put_object(Bucket=bucket, Key=key, Body=b"")
    got = s3.get_object(Bucket=bucket, Key=key)
    assert got["ContentLength"] == 0 and got["Body"].read() == b""
    assert got["ETag"] == '"d41d8cd98f00b204e9800998ecf8427e"'


def test_list_objects_v2_prefix_delimiter_pagination(s3, bucket, prefix):
    keys = [f"{prefix}dir{d}/f{i}" for d in range(2) for i in range(3)] + [f"{prefix}top{i}" for i in range(3)]
    for k in keys:
        s3.put_object(Bucket=bucket, Key=k, Body=b"x")
    r = s3.list_objects_v2(Bucket=bucket, Prefix=prefix)
    assert [o["Key"] for o in r["Contents"]] == sorted(keys)
    assert r["KeyCount"] == len(keys)
    r = s3.list_objects_v2(Bucket=bucket, Prefix=prefix, Delimiter="/")
    assert [p["Prefix"] for p in r["CommonPrefixes"]] == [f"{prefix}dir0/", f"{prefix}dir1/"]
    assert [o["Key"] for o in r["Contents"]] == [f"{prefix}top{i}" for i in range(3)]
    # Pagination with continuation tokens and StartAfter.
    seen, token = [], None
    while True:
        kw = {"ContinuationToken": token} if token else {}
        page = s3.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=4, **kw)
        seen += [o["Key"] for o in page.get("Contents", [])]
        assert len(page.get("Contents", [])) <= 4
        if not page["IsTruncated"]:
            break
        token = page["NextContinuationToken"]
    assert seen == sorted(keys)
    after = s3.list_objects_v2(Bucket=bucket, Prefix=prefix, StartAfter=sorted(keys)[4])
    assert [o["Key"] for o in after["Contents"]] == sorted(keys)[5:]
    paginator = s3.get_paginator("list_objects_v2")
    assert sum(len(p.get("Contents", [])) for p in paginator.paginate(Bucket=bucket, Prefix=prefix, PaginationConfig={"PageSize": 2})) == len(keys)


def test_list_objects_v1(s3, bucket, prefix):
    keys = [f"{prefix}k{i:02d}" for i in range(5)]
    for k in keys:
        s3.put_object(Bucket=bucket, Key=k, Body=b"v1")
    r = s3.list_objects(Bucket=bucket, Prefix=prefix, MaxKeys=3)
    assert [o["Key"] for o in r["Contents"]] == keys[:3]
    assert r["IsTruncated"]
    r2 = s3.list_objects(Bucket=bucket, Prefix=prefix, Marker=keys[2])
    assert [o["Key"] for o in r2["Contents"]] == keys[3:]
    assert not r2["IsTruncated"]


def test_list_object_versions(s3, bucket, prefix):
    s3.put_object(Bucket=bucket, Key=prefix + "v", Body=b"1")
    r = s3.list_object_versions(Bucket=bucket, Prefix=prefix)
    assert [v["Key"] for v in r["Versions"]] == [prefix + "v"]


def test_ranges(s3, bucket, prefix):
    key = prefix + "range"
    body = bytes(range(256)) * 40
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    cases = {"bytes=0-9": body[0:10], "bytes=100-199": body[100:200], "bytes=10000-": body[10000:], "bytes=-7": body[-7:], "bytes=10200-99999": body[10200:]}
    for rng, want in cases.items():
        got = s3.get_object(Bucket=bucket, Key=key, Range=rng)
        assert got["ResponseMetadata"]["HTTPStatusCode"] == 206, rng
        assert got["Body"].read() == want, rng
        assert got["ContentLength"] == len(want)
        assert got["ContentRange"].startswith("bytes ") and got["ContentRange"].endswith(f"/{len(body)}")
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key=key, Range=f"bytes={len(body)}-")
    assert err(e.value) == (416, "InvalidRange")


def test_metadata_round_trip(s3, bucket, prefix):
    key = prefix + "meta"
    s3.put_object(
        Bucket=bucket,
        Key=key,
        Body=b"m",
        ContentType="image/png",
        ContentDisposition='attachment; filename="a.png"',
        CacheControl="max-age=60",
        Metadata={"owner": "alice", "purpose": "test-suite"},
    )
    h = s3.head_object(Bucket=bucket, Key=key)
    assert h["ContentType"] == "image/png"
    assert h["Metadata"] == {"owner": "alice", "purpose": "test-suite"}
    assert h["ContentDisposition"] == 'attachment; filename="a.png"'
    assert h["CacheControl"] == "max-age=60"
    g = s3.get_object(Bucket=bucket, Key=key)
    assert g["Metadata"] == {"owner": "alice", "purpose": "test-suite"}


def test_copy_object(s3, bucket, prefix):
    src, dst, dst2 = prefix + "src", prefix + "dst", prefix + "dst2"
    s3.put_object(Bucket=bucket, Key=src, Body=b"copy me", ContentType="text/x-a", Metadata={"a": "1"})
    r = s3.copy_object(Bucket=bucket, Key=dst, CopySource={"Bucket": bucket, "Key": src})
    assert r["CopyObjectResult"]["ETag"] == f'"{hashlib.md5(b"copy me").hexdigest()}"'
    g = s3.get_object(Bucket=bucket, Key=dst)
    assert g["Body"].read() == b"copy me"
    assert g["Metadata"] == {"a": "1"} and g["ContentType"] == "text/x-a"
    s3.copy_object(
        Bucket=bucket, Key=dst2, CopySource=f"{bucket}/{src}", MetadataDirective="REPLACE", Metadata={"b": "2"}, ContentType="text/x-b"
    )
    h = s3.head_object(Bucket=bucket, Key=dst2)
    assert h["Metadata"] == {"b": "2"} and h["ContentType"] == "text/x-b"
    with pytest.raises(ClientError) as e:
        s3.copy_object(Bucket=bucket, Key=prefix + "x", CopySource={"Bucket": bucket, "Key": prefix + "missing"})
    assert err(e.value) == (404, "NoSuchKey")


def test_delete_objects(s3, bucket, prefix):
    keys = [prefix + f"d{i}" for i in range(4)]
    for k in keys:
        s3.put_object(Bucket=bucket, Key=k, Body=b"d")
    r = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys[:3]] + [{"Key": prefix + "never"}]})
    assert sorted(d["Key"] for d in r["Deleted"]) == sorted(keys[:3] + [prefix + "never"])
    assert not r.get("Errors")
    left = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]
    assert left == [keys[3]]


def _parts(n_full: int, tail: int) -> list[bytes]:
    rnd = os.urandom(5 * MiB)
    return [bytes([i]) + rnd[1:] for i in range(n_full)] + [os.urandom(tail)]


def test_multipart_upload_list_parts_complete(s3, bucket, prefix):
    key = prefix + "mpu.bin"
    parts = _parts(2, 1234)
    up = s3.create_multipart_upload(Bucket=bucket, Key=key, ContentType="application/x-test", Metadata={"m": "p"})
    uid = up["UploadId"]
    etags = []
    for i, p in enumerate(parts, start=1):
        r = s3.upload_part(Bucket=bucket, Key=key, UploadId=uid, PartNumber=i, Body=p)
        assert r["ETag"] == f'"{hashlib.md5(p).hexdigest()}"'
        etags.append(r["ETag"])
    lp = s3.list_parts(Bucket=bucket, Key=key, UploadId=uid)
    assert [(p["PartNumber"], p["ETag"], p["Size"]) for p in lp["Parts"]] == [(i + 1, etags[i], len(parts[i])) for i in range(3)]
    lp2 = s3.list_parts(Bucket=bucket, Key=key, UploadId=uid, MaxParts=2)
    assert [p["PartNumber"] for p in lp2["Parts"]] == [1, 2] and lp2["IsTruncated"]
    ups = s3.list_multipart_uploads(Bucket=bucket, Prefix=prefix)
    assert [(u["Key"], u["UploadId"]) for u in ups.get("Uploads", [])] == [(key, uid)]
    # Object not visible before completion.
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key=key)
    done = s3.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=uid, MultipartUpload={"Parts": [{"PartNumber": i + 1, "ETag": e} for i, e in enumerate(etags)]}
    )
    want_etag = hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest() + "-3"
    assert done["ETag"] == f'"{want_etag}"'
    g = s3.get_object(Bucket=bucket, Key=key)
    assert g["Body"].read() == b"".join(parts)
    assert g["ETag"] == f'"{want_etag}"'
    assert g["ContentType"] == "application/x-test" and g["Metadata"] == {"m": "p"}
    assert not s3.list_multipart_uploads(Bucket=bucket, Prefix=prefix).get("Uploads")
    # A ranged GET spanning the part boundary.
    r = s3.get_object(Bucket=bucket, Key=key, Range=f"bytes={5 * MiB - 3}-{5 * MiB + 2}")
    assert r["Body"].read() == b"".join(parts)[5 * MiB - 3 : 5 * MiB + 3]


def test_multipart_abort(s3, bucket, prefix):
    key = prefix + "aborted"
    uid = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    s3.upload_part(Bucket=bucket, Key=key, UploadId=uid, PartNumber=1, Body=b"a" * 1000)
    s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=uid)
    with pytest.raises(ClientError) as e:
        s3.list_parts(Bucket=bucket, Key=key, UploadId=uid)
    assert err(e.value) == (404, "NoSuchUpload")
    with pytest.raises(ClientError) as e:
        s3.upload_part(Bucket=bucket, Key=key, UploadId=uid, PartNumber=2, Body=b"b")
    assert err(e.value) == (404, "NoSuchUpload")
    assert not s3.list_multipart_uploads(Bucket=bucket, Prefix=prefix).get("Uploads")
    assert not s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents")


def test_upload_part_copy(s3, bucket, prefix):
    src = prefix + "big-src"
    data = os.urandom(6 * MiB)
    s3.put_object(Bucket=bucket, Key=src, Body=data)
    key = prefix + "partcopy"
    uid = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    p1 = s3.upload_part_copy(Bucket=bucket, Key=key, UploadId=uid, PartNumber=1, CopySource={"Bucket": bucket, "Key": src}, CopySourceRange=f"bytes=0-{5 * MiB - 1}")
    p2 = s3.upload_part_copy(Bucket=bucket, Key=key, UploadId=uid, PartNumber=2, CopySource={"Bucket": bucket, "Key": src}, CopySourceRange=f"bytes={5 * MiB}-{6 * MiB - 1}")
    assert p1["CopyPartResult"]["ETag"] == f'"{hashlib.md5(data[: 5 * MiB]).hexdigest()}"'
    s3.complete_multipart_upload(
        Bucket=bucket,
        Key=key,
        UploadId=uid,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": p1["CopyPartResult"]["ETag"]}, {"PartNumber": 2, "ETag": p2["CopyPartResult"]["ETag"]}]},
    )
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == data


def test_transfer_manager_upload_download(s3, bucket, prefix, tmp_path):
    """s3transfer's threaded multipart upload and ranged download."""
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(11 * MiB))
    cfg = TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB, max_concurrency=3)
    s3.upload_file(str(src), bucket, prefix + "tm.bin", Config=cfg)
    dst = tmp_path / "dst.bin"
    s3.download_file(bucket, prefix + "tm.bin", str(dst), Config=cfg)
    assert dst.read_bytes() == src.read_bytes()
    assert s3.head_object(Bucket=bucket, Key=prefix + "tm.bin")["ETag"].endswith('-3"')


@pytest.mark.parametrize("algo", ["CRC32", "CRC32C", "SHA1", "SHA256"])
def test_put_with_checksum_algorithm(s3, bucket, prefix, algo):
    key = prefix + "ck-" + algo
    body = os.urandom(70000)
    s3.put_object(Bucket=bucket, Key=key, Body=io.BytesIO(body), ChecksumAlgorithm=algo)
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == body


def test_presigned_put_and_get(chute, s3, bucket, prefix):
    key = prefix + "presigned file.txt"
    url = s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=300)
    r = requests.put(url, data=b"presigned body")
    assert r.status_code == 200, r.text
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=300)
    r = requests.get(url)
    assert r.status_code == 200, r.text
    assert r.content == b"presigned body"
    r = requests.get(url, headers={"Range": "bytes=0-8"})
    assert r.status_code == 206 and r.content == b"presigned"
    url = s3.generate_presigned_url("head_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=300)
    assert requests.head(url).status_code == 200
    url = s3.generate_presigned_url("delete_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=300)
    assert requests.delete(url).status_code == 204
    assert not s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents")


def test_bucket_crud(s3):
    name = f"crud-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    s3.head_bucket(Bucket=name)
    assert name in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    with pytest.raises(ClientError) as e:
        s3.create_bucket(Bucket=name)
    assert err(e.value)[1] in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists")
    s3.put_object(Bucket=name, Key="k", Body=b"1")
    with pytest.raises(ClientError) as e:
        s3.delete_bucket(Bucket=name)
    assert err(e.value) == (409, "BucketNotEmpty")
    s3.delete_object(Bucket=name, Key="k")
    s3.delete_bucket(Bucket=name)
    with pytest.raises(ClientError) as e:
        s3.head_bucket(Bucket=name)
    assert err(e.value)[0] == 404
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=name, Key="k", Body=b"1")
    assert err(e.value) == (404, "NoSuchBucket")


def test_invalid_bucket_name(s3):
    with pytest.raises(ClientError) as e:
        s3.create_bucket(Bucket="Bad_Name")
    assert err(e.value) == (400, "InvalidBucketName")


def test_bucket_cors(chute, s3):
    name = f"cors-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    try:
        with pytest.raises(ClientError) as e:
            s3.get_bucket_cors(Bucket=name)
        assert err(e.value) == (404, "NoSuchCORSConfiguration")
        rules = [
            {
                "AllowedOrigins": ["https://app.example"],
                "AllowedMethods": ["GET", "PUT", "POST"],
                "AllowedHeaders": ["*"],
                "ExposeHeaders": ["ETag"],
                "MaxAgeSeconds": 600,
            }
        ]
        s3.put_bucket_cors(Bucket=name, CORSConfiguration={"CORSRules": rules})
        got = s3.get_bucket_cors(Bucket=name)["CORSRules"]
        assert got[0]["AllowedOrigins"] == ["https://app.example"]
        assert sorted(got[0]["AllowedMethods"]) == ["GET", "POST", "PUT"]
        # A browser preflight is answered from the rules.
        r = requests.options(
            f"{chute.endpoint}/{name}/some/key",
            headers={"Origin": "https://app.example", "Access-Control-Request-Method": "PUT", "Access-Control-Request-Headers": "content-type"},
        )
        assert r.status_code == 200, r.text
        assert r.headers.get("Access-Control-Allow-Origin") == "https://app.example"
        assert "PUT" in r.headers.get("Access-Control-Allow-Methods", "")
        r = requests.options(
            f"{chute.endpoint}/{name}/some/key", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "PUT"}
        )
        assert r.status_code == 403
        s3.delete_bucket_cors(Bucket=name)
        with pytest.raises(ClientError) as e:
            s3.get_bucket_cors(Bucket=name)
        assert err(e.value)[1] == "NoSuchCORSConfiguration"
    finally:
        s3.delete_bucket(Bucket=name)


def test_unsupported_operation_is_501(s3, bucket, prefix):
    s3.put_object(Bucket=bucket, Key=prefix + "t", Body=b"t")
    with pytest.raises(ClientError) as e:
        s3.put_object_tagging(Bucket=bucket, Key=prefix + "t", Tagging={"TagSet": [{"Key": "a", "Value": "b"}]})
    assert err(e.value) == (501, "NotImplemented")
    with pytest.raises(ClientError) as e:
        s3.get_bucket_policy(Bucket=bucket)
    assert err(e.value) == (501, "NotImplemented")


def test_conditional_get(s3, bucket, prefix):
    key = prefix + "cond"
    etag = s3.put_object(Bucket=bucket, Key=key, Body=b"cond")["ETag"]
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key=key, IfNoneMatch=etag)
    assert err(e.value)[0] == 304
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key=key, IfMatch='"0000"')
    assert err(e.value) == (412, "PreconditionFailed")
    assert s3.get_object(Bucket=bucket, Key=key, IfMatch=etag)["Body"].read() == b"cond"


def test_overwrite_replaces_atomically(s3, bucket, prefix):
    key = prefix + "over"
    s3.put_object(Bucket=bucket, Key=key, Body=b"first version")
    s3.put_object(Bucket=bucket, Key=key, Body=b"second")
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"second"
    assert len(s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]) == 1
