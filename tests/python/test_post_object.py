"""Browser POST Object: forms from boto3's generate_presigned_post posted
with requests, and SigV2 forms built by hand (DESIGN.md section 4)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import xml.etree.ElementTree as ET
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from s3util import error_code, multipart_body, post_policy_v2, raw_request


def post(url, fields, content=b"hello post", filename="hello.txt", **kw):
    return requests.post(url, data=fields, files={"file": (filename, content)}, allow_redirects=False, timeout=60, **kw)


def assert_err(r, status, code):
    assert (r.status_code, error_code(r.content)) == (status, code), f"{r.status_code} {r.headers} {r.text[:500]}"


def listed(s3, bucket, prefix):
    return [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]


def test_post_success_action_status_201(s3, bucket, prefix):
    key = prefix + "form-201.txt"
    p = s3.generate_presigned_post(bucket, key, Fields={"success_action_status": "201"}, Conditions=[{"success_action_status": "201"}], ExpiresIn=300)
    r = post(p["url"], p["fields"])
    assert r.status_code == 201, r.text
    doc = ET.fromstring(r.content)
    strip = lambda t: t.split("}")[-1]  # noqa: E731
    vals = {strip(c.tag): c.text for c in doc}
    assert vals["Bucket"] == bucket and vals["Key"] == key
    assert vals["ETag"].strip('"') == hashlib.md5(b"hello post").hexdigest()
    assert "Location" in vals
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"hello post"


def test_post_default_204(s3, bucket, prefix):
    key = prefix + "form-204.txt"
    p = s3.generate_presigned_post(bucket, key, ExpiresIn=300)
    r = post(p["url"], p["fields"])
    assert r.status_code == 204, r.text
    assert r.headers.get("ETag", "").strip('"') == hashlib.md5(b"hello post").hexdigest()
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"hello post"


def test_post_success_action_redirect(s3, bucket, prefix):
    key = prefix + "form-redirect.txt"
    target = "https://app.example/done?x=1"
    p = s3.generate_presigned_post(bucket, key, Fields={"success_action_redirect": target}, Conditions=[{"success_action_redirect": target}], ExpiresIn=300)
    r = post(p["url"], p["fields"])
    assert r.status_code == 303, r.text
    loc = r.headers["Location"]
    assert loc.startswith("https://app.example/done?")
    q = parse_qs(urlsplit(loc).query)
    assert q["x"] == ["1"] and q["bucket"] == [bucket] and q["key"] == [key]
    assert q["etag"][0].strip('"') == hashlib.md5(b"hello post").hexdigest()
    assert listed(s3, bucket, prefix) == [key]


def test_post_content_type_and_meta_fields(s3, bucket, prefix):
    key = prefix + "typed.png"
    fields = {"Content-Type": "image/png", "x-amz-meta-owner": "bob"}
    conds = [["starts-with", "$Content-Type", "image/"], {"x-amz-meta-owner": "bob"}]
    p = s3.generate_presigned_post(bucket, key, Fields=fields, Conditions=conds, ExpiresIn=300)
    r = post(p["url"], p["fields"], content=b"\x89PNG\r\n\x1a\n")
    assert r.status_code == 204, r.text
    h = s3.head_object(Bucket=bucket, Key=key)
    assert h["ContentType"] == "image/png" and h["Metadata"] == {"owner": "bob"}


def test_post_tampered_signature(s3, bucket, prefix):
    p = s3.generate_presigned_post(bucket, prefix + "t.txt", ExpiresIn=300)
    f = dict(p["fields"])
    sig = f["x-amz-signature"]
    f["x-amz-signature"] = ("0" if sig[0] != "0" else "1") + sig[1:]
    assert_err(post(p["url"], f), 403, "SignatureDoesNotMatch")
    assert listed(s3, bucket, prefix) == []


def test_post_tampered_policy(s3, bucket, prefix):
    p = s3.generate_presigned_post(bucket, prefix + "t.txt", Conditions=[["content-length-range", 0, 5]], ExpiresIn=300)
    f = dict(p["fields"])
    pol = base64.b64decode(f["policy"]).replace(b'"content-length-range", 0, 5', b'"content-length-range", 0, 500')
    f["policy"] = base64.b64encode(pol).decode()
    assert_err(post(p["url"], f), 403, "SignatureDoesNotMatch")
    assert listed(s3, bucket, prefix) == []


def test_post_too_large(s3, bucket, prefix):
    p = s3.generate_presigned_post(bucket, prefix + "big.bin", Conditions=[["content-length-range", 1, 100]], ExpiresIn=300)
    assert_err(post(p["url"], p["fields"], content=b"x" * 101), 400, "EntityTooLarge")
    r = post(p["url"], p["fields"], content=b"x" * 100)
    assert r.status_code == 204, r.text
    assert listed(s3, bucket, prefix) == [prefix + "big.bin"]
    assert s3.head_object(Bucket=bucket, Key=prefix + "big.bin")["ContentLength"] == 100


def test_post_too_small(s3, bucket, prefix):
    p = s3.generate_presigned_post(bucket, prefix + "small.bin", Conditions=[["content-length-range", 10, 100]], ExpiresIn=300)
    assert_err(post(p["url"], p["fields"], content=b"x" * 9), 400, "EntityTooSmall")
    assert listed(s3, bucket, prefix) == []


def test_post_wrong_key_prefix(s3, bucket, prefix):
    p = s3.generate_presigned_post(bucket, prefix + "user/${filename}", Conditions=[["starts-with", "$key", prefix + "user/"]], ExpiresIn=300)
    f = dict(p["fields"])
    f["key"] = prefix + "admin/evil.txt"
    assert_err(post(p["url"], f), 403, "AccessDenied")
    assert listed(s3, bucket, prefix) == []


def test_post_exact_key_changed(s3, bucket, prefix):
    p = s3.generate_presigned_post(bucket, prefix + "exact.txt", ExpiresIn=300)
    f = dict(p["fields"])
    f["key"] = prefix + "other.txt"
    r = post(p["url"], f)
    assert_err(r, 403, "AccessDenied")
    assert "Invalid according to Policy" in r.text
    assert listed(s3, bucket, prefix) == []


def test_post_expired(s3, bucket, prefix):
    p = s3.generate_presigned_post(bucket, prefix + "expired.txt", ExpiresIn=-60)
    assert_err(post(p["url"], p["fields"]), 403, "AccessDenied")
    assert listed(s3, bucket, prefix) == []


def test_post_filename_placeholder(s3, bucket, prefix):
    p = s3.generate_presigned_post(bucket, prefix + "${filename}", Conditions=[["starts-with", "$key", prefix]], ExpiresIn=300)
    r = post(p["url"], p["fields"], filename="holiday photo.jpg", content=b"jpeg")
    assert r.status_code == 204, r.text
    keys = listed(s3, bucket, prefix)
    assert len(keys) == 1 and keys[0].startswith(prefix) and keys[0].endswith(".jpg"), keys
    assert s3.get_object(Bucket=bucket, Key=keys[0])["Body"].read() == b"jpeg"


def test_post_sigv2_accepted_and_tampered_refused(chute, s3, bucket, prefix):
    key = prefix + "v2.txt"
    conds = [{"bucket": bucket}, {"key": key}, ["content-length-range", 0, 1000]]
    f = post_policy_v2(chute.access_key, chute.secret_key, conds)
    f["key"] = key
    url = f"{chute.endpoint}/{bucket}"
    bad = dict(f)
    bad["signature"] = base64.b64encode(hmac.new(b"wrong", f["policy"].encode(), hashlib.sha1).digest()).decode()
    assert_err(post(url, bad), 403, "SignatureDoesNotMatch")
    assert listed(s3, bucket, prefix) == []
    r = post(url, f, content=b"sigv2 body")
    assert r.status_code == 204, r.text
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"sigv2 body"


def test_post_field_names_any_case(s3, bucket, prefix):
    key = prefix + "case.txt"
    p = s3.generate_presigned_post(bucket, key, ExpiresIn=300)
    f = p["fields"]
    renamed = {
        "Key": f["key"],
        "Policy": f["policy"],
        "X-Amz-Signature": f["x-amz-signature"],
        "X-Amz-Algorithm": f["x-amz-algorithm"],
        "X-Amz-Credential": f["x-amz-credential"],
        "X-Amz-Date": f["x-amz-date"],
    }
    r = requests.post(p["url"], data=renamed, files={"File": ("c.txt", b"case")}, timeout=60)
    assert r.status_code == 204, r.text
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"case"


def test_post_non_file_field_with_filename_attribute(chute, s3, bucket, prefix):
    key = prefix + "fnattr.txt"
    p = s3.generate_presigned_post(bucket, key, ExpiresIn=300)
    fields = list(p["fields"].items())
    body, ctype = multipart_body(fields, file_name="f.txt", file_bytes=b"attr", filename_fields=("key", "policy"))
    r = raw_request(chute.s3_port, "POST", f"/{bucket}", {"content-type": ctype}, body)
    assert r.status == 204, r
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"attr"


def test_post_fields_after_file_are_ignored(chute, s3, bucket, prefix):
    """S3 ignores everything after the file part; it cannot change the key."""
    key = prefix + "after.txt"
    p = s3.generate_presigned_post(bucket, key, ExpiresIn=300)
    body, ctype = multipart_body(list(p["fields"].items()), file_bytes=b"after", closing=False)
    boundary = ctype.split("boundary=")[1]
    body += f'--{boundary}\r\nContent-Disposition: form-data; name="key"\r\n\r\n{prefix}hijack.txt\r\n--{boundary}--\r\n'.encode()
    r = raw_request(chute.s3_port, "POST", f"/{bucket}", {"content-type": ctype}, body)
    assert r.status == 204, r
    assert listed(s3, bucket, prefix) == [key]


def test_post_large_file_streams(s3, bucket, prefix):
    key = prefix + "large-form.bin"
    data = bytes(range(256)) * (24 * 4096)  # 24 MiB
    p = s3.generate_presigned_post(bucket, key, Conditions=[["content-length-range", 0, 64 * 1024 * 1024]], ExpiresIn=300)
    r = post(p["url"], p["fields"], content=data)
    assert r.status_code == 204, r.text
    got = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    assert len(got) == len(data) and got == data


@pytest.mark.parametrize("status", ["200", "204", "999"])
def test_post_success_action_status_variants(s3, bucket, prefix, status):
    key = prefix + f"st{status}.txt"
    p = s3.generate_presigned_post(bucket, key, Fields={"success_action_status": status}, Conditions=[{"success_action_status": status}], ExpiresIn=300)
    r = post(p["url"], p["fields"])
    # S3: 200 and 204 as asked; anything else falls back to 204.
    assert r.status_code == (200 if status == "200" else 204), r.text


def test_post_boto3_default_sigv2_form(chute, s3, bucket, prefix):
    """boto3 without signature_version signs POST forms with SigV2."""
    from conftest import make_client

    v2 = make_client(chute, signature_version=None)
    key = prefix + "boto-v2.txt"
    p = v2.generate_presigned_post(bucket, key, ExpiresIn=300)
    assert "signature" in p["fields"] and "AWSAccessKeyId" in p["fields"]
    r = post(p["url"], p["fields"])
    assert r.status_code == 204, r.text
    assert listed(s3, bucket, prefix) == [key]
