"""Hostile input. Every case asserts S3's exact status and error code AND
that nothing was written: the set of files under the data dir (temp files
and logs aside) is unchanged, no temp file lingers, and the bucket listing
is unchanged. Requests are sent byte for byte with http.client and signed
correctly (unless the case is about signing), so a refusal is the key,
form or body check's, not an accident of signing."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import http.client
import json
import os
import time
import zlib
from contextlib import contextmanager

import pytest

from s3util import (
    UNSIGNED,
    assert_s3_error,
    encode_query,
    error_code,
    multipart_body,
    post_form,
    post_policy_v4,
    raw_exchange,
    presign_query,
    raw_request,
    sign_headers,
    signed_request,
    snapshot,
    temp_files,
)

B = "uploads"


def all_keys(s3, bucket=B):
    keys, token = [], None
    while True:
        kw = {"ContinuationToken": token} if token else {}
        page = s3.list_objects_v2(Bucket=bucket, **kw)
        keys += [o["Key"] for o in page.get("Contents", [])]
        if not page.get("IsTruncated"):
            return keys
        token = page["NextContinuationToken"]


@contextmanager
def nothing_written(chute, s3):
    before_files = snapshot(chute.data_dir)
    before_keys = all_keys(s3)
    yield
    deadline = time.monotonic() + 5
    while temp_files(chute.data_dir) and time.monotonic() < deadline:
        time.sleep(0.05)
    after_files = snapshot(chute.data_dir)
    assert after_files == before_files, f"files added {sorted(after_files - before_files)} removed {sorted(before_files - after_files)}"
    assert temp_files(chute.data_dir) == [], "temp files left behind after a refused request"
    assert all_keys(s3) == before_keys


@pytest.fixture
def guard(chute, s3):
    return lambda: nothing_written(chute, s3)


# ------------------------------------------------------------ keys in paths

BAD_KEY_PATHS = [
    "/uploads/../x",
    "/uploads/a/../../x",
    "/uploads/%2e%2e%2fx",
    "/uploads/..%2fx",
    "/uploads/a%5c..%5cb",
    "/uploads//x",
    "/uploads/a//b",
    "/uploads/a/./b",
    "/uploads/a%00b",
    "/uploads/a%0ab",
    "/uploads/a/..",
    "/uploads/a/",
    "/uploads/%2e",
    "/uploads/a%2f%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "/uploads/ctl%1fchar",
]


@pytest.mark.parametrize("path", BAD_KEY_PATHS)
def test_put_bad_key_in_path(chute, guard, path):
    with guard():
        r = signed_request(chute, "PUT", path, body=b"evil")
    assert_s3_error(r, 400, "InvalidArgument")


@pytest.mark.parametrize("path", ["/uploads/../../etc/passwd", "/uploads/..%2f..%2f..%2fetc%2fpasswd", "/uploads/%2e%2e/%2e%2e/Cargo.toml"])
def test_get_traversal_key(chute, guard, path):
    with guard():
        r = signed_request(chute, "GET", path)
    assert_s3_error(r, 400, "InvalidArgument")
    assert b"root:" not in r.body and b"[workspace]" not in r.body


def test_put_key_too_long(chute, guard):
    with guard():
        r = signed_request(chute, "PUT", "/uploads/" + "k" * 1025, body=b"x")
    assert_s3_error(r, 400, "KeyTooLongError")


def test_put_key_1024_bytes_allowed(chute, s3):
    key = "/".join(["s" * 200] * 5) + "/" + "e" * 19  # 1024 bytes
    assert len(key) == 1024
    r = signed_request(chute, "PUT", "/uploads/" + key, body=b"ok")
    assert r.status == 200, r
    s3.delete_object(Bucket=B, Key=key)


def test_copy_source_traversal(chute, guard):
    with guard():
        r = signed_request(chute, "PUT", "/uploads/copy-dst", headers={"x-amz-copy-source": "/uploads/../../etc/passwd"})
    assert_s3_error(r, 400, "InvalidArgument")


def test_create_multipart_bad_key(chute, guard):
    with guard():
        r = signed_request(chute, "POST", "/uploads/a/../b", query=[("uploads", "")])
    assert_s3_error(r, 400, "InvalidArgument")


def test_upload_id_traversal(chute, guard):
    with guard():
        r = signed_request(chute, "PUT", "/uploads/k", query=[("partNumber", "1"), ("uploadId", "../../buckets/uploads/x")], body=b"p")
    assert_s3_error(r, 404, "NoSuchUpload")


def test_bucket_name_traversal(chute, guard):
    with guard():
        r = signed_request(chute, "PUT", "/%2e%2e")
    assert_s3_error(r, 400, "InvalidBucketName")


# ------------------------------------------------------------ authentication


def presigned_target(chute, path, **kw):
    host = f"127.0.0.1:{chute.s3_port}"
    kw.setdefault("access", chute.access_key)
    kw.setdefault("secret", chute.secret_key)
    q = presign_query("PUT", path, host, kw.pop("access"), kw.pop("secret"), **kw)
    return q


def test_presigned_bad_signature(chute, guard):
    q = presigned_target(chute, "/uploads/ps-bad")
    q[-1] = ("X-Amz-Signature", "0" * 64)
    with guard():
        r = raw_request(chute.s3_port, "PUT", "/uploads/ps-bad?" + encode_query(q), body=b"x")
    assert_s3_error(r, 403, "SignatureDoesNotMatch")


def test_presigned_expired(chute, guard):
    past = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)
    q = presigned_target(chute, "/uploads/ps-expired", expires=60, now=past)
    with guard():
        r = raw_request(chute.s3_port, "PUT", "/uploads/ps-expired?" + encode_query(q), body=b"x")
    assert_s3_error(r, 403, "AccessDenied")


def test_presigned_used_for_other_key(chute, guard):
    q = presigned_target(chute, "/uploads/ps-a")
    with guard():
        r = raw_request(chute.s3_port, "PUT", "/uploads/ps-b?" + encode_query(q), body=b"x")
    assert_s3_error(r, 403, "SignatureDoesNotMatch")


def test_presigned_used_for_other_method(chute, guard):
    q = presigned_target(chute, "/uploads/ps-m")
    with guard():
        r = raw_request(chute.s3_port, "DELETE", "/uploads/ps-m?" + encode_query(q))
    assert_s3_error(r, 403, "SignatureDoesNotMatch")


def test_presigned_expires_over_a_week(chute, guard):
    q = presigned_target(chute, "/uploads/ps-long", expires=604801)
    with guard():
        r = raw_request(chute.s3_port, "PUT", "/uploads/ps-long?" + encode_query(q), body=b"x")
    assert_s3_error(r, 400, "AuthorizationQueryParametersError")


def test_wrong_secret(chute, guard):
    with guard():
        r = signed_request(chute, "PUT", "/uploads/wrong-secret", body=b"x", secret="not-the-secret")
    assert_s3_error(r, 403, "SignatureDoesNotMatch")


def test_unknown_access_key(chute, guard):
    with guard():
        r = signed_request(chute, "PUT", "/uploads/unknown-ak", body=b"x", access="AKIANOBODY", secret="x")
    assert_s3_error(r, 403, "InvalidAccessKeyId")


def test_missing_authorization(chute, guard):
    with guard():
        r = raw_request(chute.s3_port, "PUT", "/uploads/anon", {}, b"x")
    assert_s3_error(r, 403, "AccessDenied")
    r = raw_request(chute.s3_port, "GET", "/uploads?list-type=2")
    assert_s3_error(r, 403, "AccessDenied")


def test_payload_hash_mismatch(chute, guard):
    with guard():
        r = signed_request(chute, "PUT", "/uploads/sha-mismatch", body=b"actual body", payload_hash=hashlib.sha256(b"other").hexdigest())
    assert_s3_error(r, 400, "XAmzContentSHA256Mismatch")


def test_request_time_too_skewed(chute, guard):
    host = f"127.0.0.1:{chute.s3_port}"
    old = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)
    h = sign_headers("PUT", "/uploads/skewed", [], {"host": host}, hashlib.sha256(b"x").hexdigest(), chute.access_key, chute.secret_key, now=old)
    with guard():
        r = raw_request(chute.s3_port, "PUT", "/uploads/skewed", h, b"x")
    assert_s3_error(r, 403, "RequestTimeTooSkewed")


def test_unsigned_header_tampered(chute, guard):
    """A signed header changed after signing."""
    host = f"127.0.0.1:{chute.s3_port}"
    h = sign_headers("PUT", "/uploads/hdr", [], {"host": host, "content-type": "text/plain"}, UNSIGNED, chute.access_key, chute.secret_key)
    h["content-type"] = "text/html"
    with guard():
        r = raw_request(chute.s3_port, "PUT", "/uploads/hdr", h, b"<script>")
    assert_s3_error(r, 403, "SignatureDoesNotMatch")


# ------------------------------------------------------------ POST forms


def v4_form(chute, key_cond, conditions=(), bucket=B, **kw):
    conds = [{"bucket": bucket}, key_cond, *conditions]
    return list(post_policy_v4(chute.access_key, chute.secret_key, conds, **kw).items())


def drop(fields, name):
    return [(k, v) for k, v in fields if k != name]


def test_post_missing_policy(chute, guard):
    f = drop(v4_form(chute, {"key": "pm"}), "policy") + [("key", "pm")]
    with guard():
        r = post_form(chute, B, f)
    assert_s3_error(r, 400, "InvalidArgument")


def test_post_no_auth_fields_at_all(chute, guard):
    with guard():
        r = post_form(chute, B, [("key", "anon-post")])
    assert_s3_error(r, 403, "AccessDenied")


def test_post_missing_key(chute, guard):
    with guard():
        r = post_form(chute, B, v4_form(chute, ["starts-with", "$key", ""]))
    assert_s3_error(r, 400, "InvalidArgument")


def test_post_missing_signature(chute, guard):
    f = drop(v4_form(chute, {"key": "ms"}), "x-amz-signature") + [("key", "ms")]
    with guard():
        r = post_form(chute, B, f)
    assert_s3_error(r, 400, "InvalidArgument")


def test_post_missing_file(chute, guard):
    f = v4_form(chute, {"key": "nofile"}) + [("key", "nofile")]
    with guard():
        r = post_form(chute, B, f, file_bytes=None)
    assert_s3_error(r, 400, "InvalidArgument")


def test_post_malformed_base64_policy(chute, guard):
    f = v4_form(chute, {"key": "b64"}, policy_b64="!!!not base64@@@") + [("key", "b64")]
    with guard():
        r = post_form(chute, B, f)
    assert_s3_error(r, 400, "InvalidPolicyDocument")


def test_post_malformed_json_policy(chute, guard):
    junk = base64.b64encode(b'{"expiration": "2099-01-01T00:00:00Z", "conditions": [').decode()
    f = v4_form(chute, {"key": "json"}, policy_b64=junk) + [("key", "json")]
    with guard():
        r = post_form(chute, B, f)
    assert_s3_error(r, 400, "InvalidPolicyDocument")


def test_post_policy_without_expiration(chute, guard):
    pol = base64.b64encode(json.dumps({"conditions": [{"bucket": B}, {"key": "noexp"}]}).encode()).decode()
    f = v4_form(chute, {"key": "noexp"}, policy_b64=pol) + [("key", "noexp")]
    with guard():
        r = post_form(chute, B, f)
    assert_s3_error(r, 400, "InvalidPolicyDocument")


def test_post_extra_uncovered_field(chute, guard):
    f = v4_form(chute, {"key": "extra"}) + [("key", "extra"), ("x-amz-meta-sneaky", "1")]
    with guard():
        r = post_form(chute, B, f)
    assert_s3_error(r, 403, "AccessDenied")
    assert b"Invalid according to Policy" in r.body


def test_post_uncovered_content_type(chute, guard):
    f = v4_form(chute, {"key": "ctype"}) + [("key", "ctype"), ("Content-Type", "text/html")]
    with guard():
        r = post_form(chute, B, f)
    assert_s3_error(r, 403, "AccessDenied")


def test_post_wrong_bucket_condition(chute, guard):
    f = v4_form(chute, {"key": "wb"}, bucket="some-other-bucket") + [("key", "wb")]
    with guard():
        r = post_form(chute, B, f)
    assert_s3_error(r, 403, "AccessDenied")


def test_post_eq_condition_violated(chute, guard):
    f = v4_form(chute, {"key": "eqv"}, [["eq", "$x-amz-meta-tag", "good"]]) + [("key", "eqv"), ("x-amz-meta-tag", "bad")]
    with guard():
        r = post_form(chute, B, f)
    assert_s3_error(r, 403, "AccessDenied")


def test_post_content_length_range_too_large(chute, guard):
    f = v4_form(chute, {"key": "clr-big"}, [["content-length-range", 0, 1000]]) + [("key", "clr-big")]
    with guard():
        r = post_form(chute, B, f, file_bytes=os.urandom(1001))
    assert_s3_error(r, 400, "EntityTooLarge")


def test_post_content_length_range_too_large_big_body(chute, guard):
    """An 8 MiB file against a 1 KiB limit: refused, nothing kept."""
    f = v4_form(chute, {"key": "clr-huge"}, [["content-length-range", 0, 1024]]) + [("key", "clr-huge")]
    with guard():
        r = post_form(chute, B, f, file_bytes=b"z" * (8 * 1024 * 1024))
    assert_s3_error(r, 400, "EntityTooLarge")


def test_post_content_length_range_too_small(chute, guard):
    f = v4_form(chute, {"key": "clr-small"}, [["content-length-range", 100, 1000]]) + [("key", "clr-small")]
    with guard():
        r = post_form(chute, B, f, file_bytes=b"tiny")
    assert_s3_error(r, 400, "EntityTooSmall")


def test_post_traversal_key_signed(chute, guard):
    """Even a policy that signs `../x` cannot write outside the bucket."""
    f = v4_form(chute, {"key": "../escape"}) + [("key", "../escape")]
    with guard():
        r = post_form(chute, B, f)
    assert_s3_error(r, 400, "InvalidArgument")


def test_post_filename_with_dotdot_is_sanitised(chute, s3):
    """`${filename}` from a hostile browser: only the base name is used and
    nothing lands outside buckets/uploads/<prefix>/."""
    before = snapshot(chute.data_dir)
    f = v4_form(chute, ["starts-with", "$key", "fn-dd/"]) + [("key", "fn-dd/${filename}")]
    r = post_form(chute, B, f, file_name="../../../../etc/passwd")
    assert r.status == 204, r
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=B, Prefix="fn-dd/").get("Contents", [])]
    assert keys == ["fn-dd/passwd"], keys
    added = snapshot(chute.data_dir) - before
    assert added and all(p.startswith(os.path.join("buckets", B) + os.sep) for p in added), added
    assert not any(".." in p.split(os.sep) for p in added)
    s3.delete_object(Bucket=B, Key="fn-dd/passwd")


def test_post_filename_with_backslashes_is_sanitised(chute, s3):
    f = v4_form(chute, ["starts-with", "$key", "fn-bs/"]) + [("key", "fn-bs/${filename}")]
    r = post_form(chute, B, f, file_name="..\\..\\windows\\win.ini")
    assert r.status == 204, r
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=B, Prefix="fn-bs/").get("Contents", [])]
    assert keys == ["fn-bs/win.ini"], keys
    s3.delete_object(Bucket=B, Key="fn-bs/win.ini")


def test_post_to_missing_bucket(chute, guard):
    f = v4_form(chute, {"key": "nb"}, bucket="no-such-bucket-here") + [("key", "nb")]
    with guard():
        r = post_form(chute, "no-such-bucket-here", f)
    assert_s3_error(r, 404, "NoSuchBucket")


def _valid_body(chute, key):
    return multipart_body(v4_form(chute, {"key": key}) + [("key", key)], file_bytes=b"0123456789" * 100)


def test_multipart_no_boundary(chute, guard):
    body, _ = _valid_body(chute, "mal-nb")
    with guard():
        r = raw_request(chute.s3_port, "POST", "/uploads", {"content-type": "multipart/form-data"}, body)
    assert_s3_error(r, 400, "MalformedPOSTRequest")


def test_multipart_truncated_body(chute, guard):
    body, ctype = _valid_body(chute, "mal-trunc")
    cut = body[: len(body) - 600]  # inside the file part
    with guard():
        r = raw_request(chute.s3_port, "POST", "/uploads", {"content-type": ctype}, cut)
    assert_s3_error(r, 400, "MalformedPOSTRequest")


def test_multipart_no_closing_boundary(chute, guard):
    key = "mal-noclose"
    body, ctype = multipart_body(v4_form(chute, {"key": key}) + [("key", key)], file_bytes=b"abc" * 100, closing=False)
    with guard():
        r = raw_request(chute.s3_port, "POST", "/uploads", {"content-type": ctype}, body)
    assert_s3_error(r, 400, "MalformedPOSTRequest")


def test_multipart_boundary_mismatch(chute, guard):
    body, _ = _valid_body(chute, "mal-mismatch")
    with guard():
        r = raw_request(chute.s3_port, "POST", "/uploads", {"content-type": "multipart/form-data; boundary=somethingelse"}, body)
    assert_s3_error(r, 400, "MalformedPOSTRequest")


def test_multipart_oversize_field(chute, guard):
    key = "mal-bigfield"
    f = v4_form(chute, {"key": key}, [["starts-with", "$x-amz-meta-big", ""]]) + [("key", key), ("x-amz-meta-big", "A" * (1024 * 1024))]
    with guard():
        r = post_form(chute, B, f)
    assert_s3_error(r, 400, "MaxPostPreDataLengthExceededError")


# ------------------------------------------------------------ digests


def test_wrong_content_md5(chute, guard):
    md5 = base64.b64encode(hashlib.md5(b"something else").digest()).decode()
    with guard():
        r = signed_request(chute, "PUT", "/uploads/bad-md5", headers={"content-md5": md5}, body=b"the body")
    assert_s3_error(r, 400, "BadDigest")


def test_malformed_content_md5(chute, guard):
    with guard():
        r = signed_request(chute, "PUT", "/uploads/bad-md5-2", headers={"content-md5": "not-md5"}, body=b"the body")
    assert_s3_error(r, 400, "InvalidDigest")


def test_wrong_checksum_sha256(chute, guard):
    ck = base64.b64encode(hashlib.sha256(b"other").digest()).decode()
    with guard():
        r = signed_request(chute, "PUT", "/uploads/bad-sha", headers={"x-amz-checksum-sha256": ck}, body=b"the body")
    assert_s3_error(r, 400, "BadDigest")


def test_wrong_checksum_crc32(chute, guard):
    ck = base64.b64encode(zlib.crc32(b"other").to_bytes(4, "big")).decode()
    with guard():
        r = signed_request(chute, "PUT", "/uploads/bad-crc", headers={"x-amz-checksum-crc32": ck}, body=b"the body")
    assert_s3_error(r, 400, "BadDigest")


def _chunked_trailer_put(chute, key, data, crc_of):
    ck = base64.b64encode(zlib.crc32(crc_of).to_bytes(4, "big")).decode()
    body = f"{len(data):x}\r\n".encode() + data + b"\r\n0\r\n" + f"x-amz-checksum-crc32:{ck}\r\n\r\n".encode()
    headers = {
        "content-encoding": "aws-chunked",
        "x-amz-decoded-content-length": str(len(data)),
        "x-amz-trailer": "x-amz-checksum-crc32",
    }
    return signed_request(chute, "PUT", f"/uploads/{key}", headers=headers, body=body, payload_hash="STREAMING-UNSIGNED-PAYLOAD-TRAILER")


def test_aws_chunked_trailer_checksum(chute, s3, guard):
    data = os.urandom(5000)
    r = _chunked_trailer_put(chute, "trailer-ok", data, data)
    assert r.status == 200, r
    assert s3.get_object(Bucket=B, Key="trailer-ok")["Body"].read() == data
    s3.delete_object(Bucket=B, Key="trailer-ok")
    with guard():
        r = _chunked_trailer_put(chute, "trailer-bad", data, b"not the data")
    assert_s3_error(r, 400, "BadDigest")


def test_zero_byte_put_allowed(chute, s3):
    r = signed_request(chute, "PUT", "/uploads/zero-byte", body=b"")
    assert r.status == 200, r
    assert s3.head_object(Bucket=B, Key="zero-byte")["ContentLength"] == 0
    s3.delete_object(Bucket=B, Key="zero-byte")


def test_declared_5gib_plus_one_refused_before_body(chute, guard):
    """Content-Length over S3's 5 GiB single-PUT limit: refused from the
    headers alone. Only the headers are sent; the answer must not wait for
    a body that will never come."""
    host = f"127.0.0.1:{chute.s3_port}"
    h = sign_headers("PUT", "/uploads/too-big", [], {"host": host, "content-length": "5368709121"}, UNSIGNED, chute.access_key, chute.secret_key)
    with guard():
        t0 = time.monotonic()
        try:
            r = raw_exchange(chute.s3_port, "PUT", "/uploads/too-big", h, b"", timeout=10)
        except TimeoutError:
            pytest.fail("no response within 10 s: the server waits for the 5 GiB body instead of refusing the declared length")
        elapsed = time.monotonic() - t0
    assert_s3_error(r, 400, "EntityTooLarge")
    assert elapsed < 10


# ------------------------------------------------------------ multipart


@pytest.fixture
def mpu(s3):
    key = "hostile-mpu"
    uid = s3.create_multipart_upload(Bucket=B, Key=key)["UploadId"]
    p1 = os.urandom(5 * 1024 * 1024)
    e1 = s3.upload_part(Bucket=B, Key=key, UploadId=uid, PartNumber=1, Body=p1)["ETag"]
    e2 = s3.upload_part(Bucket=B, Key=key, UploadId=uid, PartNumber=2, Body=b"tail")["ETag"]
    yield key, uid, e1, e2
    s3.abort_multipart_upload(Bucket=B, Key=key, UploadId=uid)


def complete_xml(parts):
    inner = "".join(f"<Part><PartNumber>{n}</PartNumber><ETag>{e}</ETag></Part>" for n, e in parts)
    return f"<CompleteMultipartUpload>{inner}</CompleteMultipartUpload>".encode()


def complete(chute, key, uid, parts):
    return signed_request(chute, "POST", f"/uploads/{key}", query=[("uploadId", uid)], body=complete_xml(parts))


def test_complete_wrong_etag(chute, guard, mpu):
    key, uid, e1, _ = mpu
    with guard():
        r = complete(chute, key, uid, [(1, e1), (2, '"00000000000000000000000000000000"')])
    assert_s3_error(r, 400, "InvalidPart")


def test_complete_wrong_order(chute, guard, mpu):
    key, uid, e1, e2 = mpu
    with guard():
        r = complete(chute, key, uid, [(2, e2), (1, e1)])
    assert_s3_error(r, 400, "InvalidPartOrder")


def test_complete_missing_part(chute, guard, mpu):
    key, uid, e1, e2 = mpu
    with guard():
        r = complete(chute, key, uid, [(1, e1), (2, e2), (3, e2)])
    assert_s3_error(r, 400, "InvalidPart")


def test_complete_no_parts(chute, guard, mpu):
    key, uid, _, _ = mpu
    with guard():
        r = complete(chute, key, uid, [])
    assert_s3_error(r, 400, "MalformedXML")


def test_complete_part_too_small(chute, s3, guard):
    key = "hostile-small-part"
    uid = s3.create_multipart_upload(Bucket=B, Key=key)["UploadId"]
    try:
        e1 = s3.upload_part(Bucket=B, Key=key, UploadId=uid, PartNumber=1, Body=b"a" * 1024)["ETag"]
        e2 = s3.upload_part(Bucket=B, Key=key, UploadId=uid, PartNumber=2, Body=b"b" * 1024)["ETag"]
        with guard():
            r = complete(chute, key, uid, [(1, e1), (2, e2)])
        assert_s3_error(r, 400, "EntityTooSmall")
    finally:
        s3.abort_multipart_upload(Bucket=B, Key=key, UploadId=uid)


def test_complete_unknown_upload(chute, guard):
    with guard():
        r = complete(chute, "nobody", "does-not-exist", [(1, '"x"')])
    assert_s3_error(r, 404, "NoSuchUpload")


@pytest.mark.parametrize("part", ["0", "10001", "-1", "abc"])
def test_bad_part_number(chute, guard, mpu, part):
    key, uid, _, _ = mpu
    with guard():
        r = signed_request(chute, "PUT", f"/uploads/{key}", query=[("partNumber", part), ("uploadId", uid)], body=b"part")
    assert_s3_error(r, 400, "InvalidArgument")
