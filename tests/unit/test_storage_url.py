"""Storage URL parsing: every parameter, folding, secrets, errors, redaction, protobuf."""
from __future__ import annotations

import pytest

from br_common.kvproto import brpb_pb2
from br_common.storage.schemes import location_from_pb, parse_storage_url
from br_common.storage.url import LocalLocation, S3Credentials, S3Flags, S3Location

SECRET = "wJalr+XUtnFEMI/K7MDENG+bPxRfiCY"  # '+' and '/' must survive
SECRET_Q = "wJalr+XUtnFEMI%2FK7MDENG+bPxRfiCY"


def s3(url: str, flags: S3Flags | None = None) -> S3Location:
    location = parse_storage_url(url, flags)
    assert isinstance(location, S3Location)
    return location


def test_bucket_and_prefix():
    loc = s3("s3://my-bucket/backups//2024/full/")
    assert (loc.bucket, loc.prefix) == ("my-bucket", "backups/2024/full")
    assert s3("s3://my-bucket").prefix == ""
    assert s3("S3://my-bucket/p").bucket == "my-bucket"


def test_defaults():
    loc = s3("s3://bkt/p")
    assert loc.region == "us-east-1"
    assert loc.force_path_style is True
    assert loc.endpoint is None and loc.credentials is None and loc.sse is None


def test_every_parameter_values():
    loc = s3("s3://bkt/p?access-key=AKIDEXAMPLE&secret-access-key=" + SECRET_Q + "&session-token=tok+en"
             "&endpoint=https://s3.example.com:9000/&region=eu-west-3&force-path-style=false"
             "&storage-class=STANDARD_IA&sse=aws:kms&sse-kms-key-id=arn:aws:kms:eu-west-3:1:key/abc"
             "&acl=bucket-owner-full-control&provider=ceph&role-arn=arn:aws:iam::123456789012:role/backup"
             "&external-id=ext-1")
    assert loc.credentials is not None
    assert loc.credentials.access_key.get_secret_value() == "AKIDEXAMPLE"
    assert loc.credentials.secret_access_key.get_secret_value() == SECRET
    assert loc.credentials.session_token is not None
    assert loc.credentials.session_token.get_secret_value() == "tok+en"
    assert loc.endpoint == "https://s3.example.com:9000"
    assert loc.region == "eu-west-3"
    assert loc.force_path_style is False
    assert loc.storage_class == "STANDARD_IA"
    assert loc.sse == "aws:kms"
    assert loc.sse_kms_key_id == "arn:aws:kms:eu-west-3:1:key/abc"
    assert loc.acl == "bucket-owner-full-control"
    assert loc.provider == "ceph"
    assert loc.role_arn == "arn:aws:iam::123456789012:role/backup"
    assert loc.external_id == "ext-1"


def test_profile():
    assert s3("s3://bkt?profile=backup").profile == "backup"


@pytest.mark.parametrize("key", ["ACCESS_KEY", "Access-Key", "access_key", "aCcEsS-kEy"])
def test_keys_fold_case_and_underscore(key):
    loc = s3(f"s3://bkt?{key}=AK&Secret_Access_Key=SK&FORCE_PATH_STYLE=0&Storage_Class=GLACIER")
    assert loc.credentials is not None
    assert loc.credentials.access_key.get_secret_value() == "AK"
    assert loc.force_path_style is False
    assert loc.storage_class == "GLACIER"


@pytest.mark.parametrize("raw, expected", [(SECRET, SECRET), ("a%2Bb+c", "a+b+c"), ("a%26b%3Dc%23", "a&b=c#")])
def test_plus_and_escapes_in_secrets_survive(raw, expected):
    loc = s3(f"s3://bkt?access-key=AK&secret-access-key={raw}")
    assert loc.credentials is not None
    assert loc.credentials.secret_access_key.get_secret_value() == expected


def test_kms_key_implies_kms():
    assert s3("s3://bkt?sse-kms-key-id=k1").sse == "aws:kms"
    assert s3("s3://bkt?sse=AES256").sse == "AES256"


@pytest.mark.parametrize("url", ["local:///data/backup", "file:///data/backup", "/data/backup", "/data//backup/",
                                 "local:///data/back%20up"])
def test_local(url):
    loc = parse_storage_url(url)
    assert isinstance(loc, LocalLocation)
    assert loc.path in ("/data/backup", "/data/back up")
    assert loc.to_pb().local.path == loc.path


BAD_URLS = [
    ("", "empty"),
    ("s3://", "bucket is missing"),
    ("s3:///prefix", "bucket is missing"),
    ("s3://?access-key=AK&secret-access-key=" + SECRET_Q, "bucket is missing"),
    ("s3://bkt?access-key=AK", "access-key needs secret-access-key"),
    ("s3://bkt?secret-access-key=" + SECRET_Q, "secret-access-key needs access-key"),
    ("s3://bkt?session-token=" + SECRET_Q, "session-token needs access-key"),
    ("s3://bkt?acess-key=AK&secret-access-key=" + SECRET_Q, "unknown storage parameter 'acess-key'"),
    ("s3://bkt?secret-access-key=ab&cd&access-key=AK", "has no '='"),
    ("s3://bkt?secret-access-key=a+b&" + SECRET_Q + "=x&access-key=AK", "not shown"),
    ("s3://bkt?secret-access-key=" + SECRET + "#frag&access-key=AK", "'#'"),
    ("s3://bkt?region=", "region has no value"),
    ("s3://bkt?region=a&REGION=b", "region is given twice"),
    ("s3://bkt?force-path-style=maybe", "force-path-style must be true or false"),
    ("s3://bkt?endpoint=localhost:9000", "endpoint"),
    ("s3://bkt?endpoint=http://AK:" + SECRET_Q + "@host", "endpoint must not carry credentials"),
    ("s3://bkt?endpoint=http://host:" + SECRET_Q, "not a valid URL"),
    ("s3://bkt?sse=aes", "sse"),
    ("s3://bkt?sse=AES256&sse-kms-key-id=k", "sse-kms-key-id needs sse=aws:kms"),
    ("s3://bkt?acl=everyone", "canned ACL"),
    ("s3://bkt?external-id=x", "external-id needs role-arn"),
    ("s3://bkt?role-arn=backup", "role-arn must be an ARN"),
    ("s3://bkt?profile=p&access-key=AK&secret-access-key=" + SECRET_Q, "exclusive"),
    ("s3://bkt?storage-class=STANDARD%20IA", "storage-class"),
    ("s3://AK:" + SECRET_Q + "@bkt/p", "credentials before the bucket"),
    ("s3://b/p", "bucket name"),
    ("s3://bkt/../p", "'..'"),
    ("gs://bkt/p", "unsupported storage scheme 'gs'"),
    ("relative/path", "absolute"),
    ("local://host/path", "absolute path"),
    ("local:///data?x=1", "no parameters"),
    ("/data/../etc", "'..'"),
]


@pytest.mark.parametrize("url, fragment", BAD_URLS)
def test_bad_urls_fail_with_one_line_and_no_secret(url, fragment):
    with pytest.raises(ValueError) as info:
        parse_storage_url(url)
    message = str(info.value)
    assert fragment in message
    assert "\n" not in message
    for secret in (SECRET, SECRET_Q, "wJalr", "bPxRfiCY"):
        assert secret not in message


def test_redacted_hides_every_credential():
    loc = s3(f"s3://bkt/p?access-key=AKIDEXAMPLE&secret-access-key={SECRET_Q}&session-token=TOKEN"
             "&endpoint=http://127.0.0.1:9000&region=eu-west-1&sse=AES256")
    text = loc.redacted()
    assert text.startswith("s3://bkt/p?")
    assert "access-key=***" in text and "secret-access-key=***" in text and "session-token=***" in text
    assert "endpoint=http://127.0.0.1:9000" in text and "region=eu-west-1" in text and "sse=AES256" in text
    for secret in ("AKIDEXAMPLE", SECRET, "wJalr", "TOKEN"):
        assert secret not in text
        assert secret not in repr(loc) and secret not in str(loc)
        assert secret not in loc.model_dump_json()


def test_redacted_round_trips_without_credentials():
    loc = s3("s3://bkt/p?endpoint=http://127.0.0.1:9000&force-path-style=false&storage-class=STANDARD_IA")
    assert parse_storage_url(loc.redacted()) == loc


def test_redacted_quotes_the_prefix():
    loc = s3("s3://bkt/a%3Fb/c%20d+e%25?region=r")
    assert loc.prefix == "a?b/c d+e%"
    assert parse_storage_url(loc.redacted()) == loc


def test_flags_merge_url_wins():
    flags = S3Flags.from_mapping({"s3.region": "eu-west-1", "s3.storage-class": "STANDARD_IA",
                                  "s3_endpoint": "http://127.0.0.1:1", "s3.acl": None})
    loc = s3("s3://bkt/p?region=ap-south-1", flags)
    assert loc.region == "ap-south-1"  # URL wins
    assert loc.storage_class == "STANDARD_IA"  # flag fills in
    assert loc.endpoint == "http://127.0.0.1:1"
    assert loc.acl is None


def test_every_flag():
    flags = S3Flags.from_mapping({
        "s3.endpoint": "http://h:1", "s3.region": "r1", "s3.storage-class": "GLACIER", "s3.sse": "aws:kms",
        "s3.sse-kms-key-id": "k", "s3.acl": "private", "s3.provider": "minio", "s3.role-arn": "arn:aws:iam::1:role/r",
        "s3.external-id": "e", "s3.profile": "p"})
    loc = s3("s3://bkt", flags)
    assert (loc.endpoint, loc.region, loc.storage_class, loc.sse, loc.sse_kms_key_id, loc.acl, loc.provider,
            loc.role_arn, loc.external_id, loc.profile) == (
        "http://h:1", "r1", "GLACIER", "aws:kms", "k", "private", "minio", "arn:aws:iam::1:role/r", "e", "p")


def test_flag_errors():
    with pytest.raises(ValueError, match="unknown flag --s3.secret-access-key"):
        S3Flags.from_mapping({"s3.secret-access-key": SECRET})
    with pytest.raises(ValueError, match="storage parameter sse"):
        parse_storage_url("s3://bkt", S3Flags(sse="des"))
    with pytest.raises(ValueError, match="only to s3://"):
        parse_storage_url("/data", S3Flags(region="r"))
    assert isinstance(parse_storage_url("/data", S3Flags()), LocalLocation)


def test_to_pb_without_credentials_by_default():
    loc = s3(f"s3://bkt/p?access-key=AK&secret-access-key={SECRET_Q}&session-token=T&region=r&acl=private"
             "&force-path-style=false")
    backend = loc.to_pb()
    assert backend.WhichOneof("backend") == "s3"
    assert (backend.s3.bucket, backend.s3.prefix, backend.s3.region, backend.s3.acl) == ("bkt", "p", "r", "private")
    assert backend.s3.force_path_style is False
    assert backend.s3.access_key == "" and backend.s3.secret_access_key == "" and backend.s3.session_token == ""
    assert SECRET.encode() not in backend.SerializeToString()
    full = loc.to_pb(with_credentials=True)
    assert (full.s3.access_key, full.s3.secret_access_key, full.s3.session_token) == ("AK", SECRET, "T")


def test_pb_round_trip():
    loc = s3(f"s3://bkt/p?access-key=AK&secret-access-key={SECRET_Q}&endpoint=http://h:1&sse=aws:kms"
             "&sse-kms-key-id=k&provider=minio&role-arn=arn:aws:iam::1:role/r&external-id=e")
    assert location_from_pb(loc.to_pb(with_credentials=True)) == loc
    assert location_from_pb(loc.to_pb()) == loc.without_credentials()
    local = parse_storage_url("/data/b")
    assert location_from_pb(local.to_pb()) == local
    with pytest.raises(ValueError, match="unsupported storage backend"):
        location_from_pb(brpb_pb2.StorageBackend(noop=brpb_pb2.Noop()))


def test_credentials_reveal_round_trip_and_attach():
    loc = s3(f"s3://bkt/p?access-key=AK&secret-access-key={SECRET_Q}")
    assert loc.credentials is not None
    plain = loc.credentials.reveal()
    again = S3Credentials.from_revealed(plain)
    assert again == loc.credentials
    bare = loc.without_credentials()
    assert bare.credentials is None
    assert bare.with_credentials(again) == loc
    with pytest.raises(ValueError, match="not valid"):
        S3Credentials.from_revealed(b'{"access_key": "x"}')
