"""BR storage URLs: `s3://bucket/prefix?params`, `local:///abs/path` (or a bare absolute path):
the location models and each scheme's parser (dispatch by scheme: br_common.storage.schemes).

Parsing is strict: an unknown parameter, a missing bucket or half a key pair is a one-line
ValueError naming the parameter and never echoing a value (values may be secrets).

Precedence: a parameter in the URL wins over the same `--s3.*` flag. The URL names one backup
location, flags are the command's defaults; this is also what TiDB BR does.

Credentials are SecretStr: they print as '**********', dump to JSON as '**********' (so a location
sent in a Celery message never carries them) and reach the protobuf only on explicit request.
"""
from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Annotated, Literal
from urllib.parse import quote, unquote, urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, TypeAdapter, ValidationError, field_validator, \
    model_validator

from br_common.kvproto import brpb_pb2

SECRET_PARAMS = ("access-key", "secret-access-key", "session-token")
S3_PARAMS = SECRET_PARAMS + (
    "endpoint", "region", "force-path-style", "storage-class", "sse", "sse-kms-key-id", "acl", "provider",
    "role-arn", "external-id", "profile",
)
# --s3.<name> flags (BR has no flag for credentials or force-path-style)
FLAG_PARAMS = ("endpoint", "region", "storage-class", "sse", "sse-kms-key-id", "acl", "provider", "role-arn",
               "external-id", "profile")
CANNED_ACLS = ("private", "public-read", "public-read-write", "authenticated-read", "aws-exec-read",
               "bucket-owner-read", "bucket-owner-full-control", "log-delivery-write")
SSE_MODES = ("AES256", "aws:kms")
DEFAULT_REGION = "us-east-1"
_BUCKET_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,61}[A-Za-z0-9]$")
_PARAM_NAME_RE = re.compile(r"^[a-z][a-z0-9.-]{0,29}$")
_WORD_RE = re.compile(r"^[A-Za-z0-9_.:/@+=,-]+$")  # storage class, provider, ids: no spaces/controls


def param_name(field: str) -> str:
    """URL parameter name of a model field (`sse_kms_key_id` -> `sse-kms-key-id`)."""
    return field.replace("_", "-")


def _field_name(param: str) -> str:
    return param.replace("-", "_")


class S3ObjectOptions(BaseModel):
    """How objects are written and whose role reads them: the options a URL parameter and an
    `--s3.*` flag both set (None: not set)."""
    model_config = ConfigDict(extra="forbid", frozen=True)

    storage_class: str | None = None
    sse: str | None = None
    sse_kms_key_id: str | None = None
    acl: str | None = None
    provider: str | None = None
    role_arn: str | None = None
    external_id: str | None = None
    profile: str | None = None


class S3Flags(S3ObjectOptions):
    """Values of the `--s3.*` flags; None means the flag was not given."""

    endpoint: str | None = None
    region: str | None = None

    @classmethod
    def from_mapping(cls, flags: Mapping[str, str | None]) -> S3Flags:
        """Build from CLI-style names: 's3.storage-class', 's3_storage_class' or 'storage-class'."""
        values: dict[str, str] = {}
        for raw, value in flags.items():
            name = raw.strip().lower().replace("_", "-").removeprefix("s3.").removeprefix("s3-")
            if name not in FLAG_PARAMS:
                raise ValueError(f"unknown flag --s3.{name}: expected one of "
                                 + ", ".join(f"--s3.{p}" for p in FLAG_PARAMS))
            if value is not None:
                values[_field_name(name)] = value
        return cls(**values)

    def given(self) -> dict[str, str]:
        """The flags that were given, by URL parameter name."""
        return {param_name(k): v for k, v in self.model_dump().items() if v is not None}


class S3Credentials(BaseModel):
    """Static S3 credentials (both keys together, optional session token)."""
    model_config = ConfigDict(extra="forbid", frozen=True)

    access_key: SecretStr
    secret_access_key: SecretStr
    session_token: SecretStr | None = None

    def reveal(self) -> bytes:
        """Plaintext JSON for sealing (br_common.sealing); handle the result as a secret."""
        data = {"access_key": self.access_key.get_secret_value(),
                "secret_access_key": self.secret_access_key.get_secret_value()}
        if self.session_token is not None:
            data["session_token"] = self.session_token.get_secret_value()
        return json.dumps(data).encode()

    @classmethod
    def from_revealed(cls, data: bytes) -> S3Credentials:
        try:
            return cls.model_validate_json(data)
        except ValidationError:
            raise ValueError("revealed credentials are not valid S3 credentials JSON") from None

    def secret_values(self) -> list[str]:
        """Every secret string, for scrubbing error messages."""
        secrets = [self.access_key, self.secret_access_key, self.session_token]
        return [s.get_secret_value() for s in secrets if s is not None and s.get_secret_value()]


class S3Location(S3ObjectOptions):
    """An S3 (or S3-compatible) backup location; keys live under `prefix` in `bucket`."""

    kind: Literal["s3"] = "s3"
    bucket: str
    prefix: str = ""
    endpoint: str | None = None
    region: str = DEFAULT_REGION
    force_path_style: bool = True
    credentials: S3Credentials | None = None

    @field_validator("bucket")
    @classmethod
    def _check_bucket(cls, bucket: str) -> str:
        if not bucket:
            raise ValueError("the bucket is missing: use s3://bucket/prefix")
        if not _BUCKET_RE.match(bucket):
            raise ValueError("the bucket name must be 3-63 letters, digits, '.', '-' or '_'")
        return bucket

    @field_validator("prefix")
    @classmethod
    def _check_prefix(cls, prefix: str) -> str:
        parts = [p for p in prefix.split("/") if p]
        if any(p in (".", "..") for p in parts):
            raise ValueError("the prefix must not contain '.' or '..' segments")
        return "/".join(parts)

    @field_validator("endpoint")
    @classmethod
    def _check_endpoint(cls, endpoint: str | None) -> str | None:
        if endpoint is None:
            return None
        if "@" in endpoint:
            raise ValueError("endpoint must not carry credentials: use access-key/secret-access-key")
        try:
            parts = urlsplit(endpoint)
            parts.port  # noqa: B018 -- raises on a bad port; urllib's message would quote the value
        except ValueError:
            raise ValueError("endpoint is not a valid URL (bad host or port)") from None
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
            raise ValueError("endpoint must be a URL with scheme, e.g. https://s3.example.com:9000")
        return endpoint.rstrip("/")

    @field_validator("region", "storage_class", "provider", "role_arn", "external_id", "profile", "sse_kms_key_id")
    @classmethod
    def _check_word(cls, value: str | None) -> str | None:
        if value is not None and not _WORD_RE.match(value):
            raise ValueError("must be a non-empty word without spaces")
        return value

    @field_validator("sse")
    @classmethod
    def _check_sse(cls, sse: str | None) -> str | None:
        if sse is not None and sse not in SSE_MODES:
            raise ValueError("must be AES256 or aws:kms")
        return sse

    @field_validator("acl")
    @classmethod
    def _check_acl(cls, acl: str | None) -> str | None:
        if acl is not None and acl not in CANNED_ACLS:
            raise ValueError("must be a canned ACL: " + ", ".join(CANNED_ACLS))
        return acl

    @model_validator(mode="after")
    def _check_combinations(self) -> S3Location:
        if self.sse_kms_key_id and self.sse != "aws:kms":
            raise ValueError("sse-kms-key-id needs sse=aws:kms")
        if self.external_id and not self.role_arn:
            raise ValueError("external-id needs role-arn")
        if self.role_arn and not self.role_arn.startswith("arn:"):
            raise ValueError("role-arn must be an ARN (arn:aws:iam::ACCOUNT:role/NAME)")
        if self.profile and self.credentials:
            raise ValueError("profile and access-key are exclusive: give one source of credentials")
        return self

    def root_uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    # --- what every location answers (br_common.storage.schemes) ---------------------------------
    @property
    def has_credentials(self) -> bool:
        return self.credentials is not None

    def clean_url(self) -> str:
        """The URL agents open: every parameter but the credentials (safe in Redis and Flower)."""
        return self.without_credentials().redacted()

    def secret_values(self) -> list[str]:
        return self.credentials.secret_values() if self.credentials is not None else []

    def revealed_credentials(self) -> bytes:
        """The URL's keys, to be sealed to the agents (br_common.sealing); never logged."""
        if self.credentials is None:
            raise ValueError("the storage URL carries no credentials")
        return self.credentials.reveal()

    def with_revealed_credentials(self, plaintext: bytes) -> S3Location:
        return self.with_credentials(S3Credentials.from_revealed(plaintext))

    def allowlist_problem(self) -> str:
        """Why this location cannot be an agent's allowed destination ("" = it can)."""
        if self.credentials is not None:
            return "an allowed destination must not carry keys"
        if self != S3Location(bucket=self.bucket, prefix=self.prefix, endpoint=self.endpoint):
            return "an allowed destination takes no parameter but endpoint"
        return ""

    def covers(self, target: object) -> bool:
        """As an allowlist entry: same server and bucket, target's prefix under ours on a '/' boundary."""
        return isinstance(target, S3Location) and self.bucket == target.bucket \
            and path_under(self.prefix, target.prefix) and _endpoint(self.endpoint) == _endpoint(target.endpoint)

    def redacted(self) -> str:
        """The URL for logs and messages: every credential is '***'."""
        params = self._params(reveal=False)
        query = "&".join(f"{k}={v}" for k, v in params.items())
        root = f"s3://{self.bucket}/{quote(self.prefix, safe='/')}" if self.prefix else f"s3://{self.bucket}"
        return root + (f"?{query}" if query else "")

    def without_credentials(self) -> S3Location:
        return self.model_copy(update={"credentials": None})

    def with_credentials(self, credentials: S3Credentials) -> S3Location:
        return S3Location.model_validate({**self.model_dump(exclude={"credentials"}), "credentials": credentials})

    def to_pb(self, *, with_credentials: bool = False) -> brpb_pb2.StorageBackend:
        """backup.StorageBackend; credentials only when asked (they then travel in clear)."""
        s3 = brpb_pb2.S3(bucket=self.bucket, prefix=self.prefix, endpoint=self.endpoint or "",
                         region=self.region, force_path_style=self.force_path_style,
                         storage_class=self.storage_class or "", sse=self.sse or "",
                         sse_kms_key_id=self.sse_kms_key_id or "", acl=self.acl or "",
                         provider=self.provider or "", role_arn=self.role_arn or "",
                         external_id=self.external_id or "", profile=self.profile or "")
        if with_credentials and self.credentials is not None:
            s3.access_key = self.credentials.access_key.get_secret_value()
            s3.secret_access_key = self.credentials.secret_access_key.get_secret_value()
            if self.credentials.session_token is not None:
                s3.session_token = self.credentials.session_token.get_secret_value()
        return brpb_pb2.StorageBackend(s3=s3)

    def _params(self, reveal: bool) -> dict[str, str]:
        out: dict[str, str] = {}
        for param in S3_PARAMS:
            if param in SECRET_PARAMS:
                continue
            value = getattr(self, _field_name(param))
            if value is None or (param == "region" and value == DEFAULT_REGION) \
                    or (param == "force-path-style" and value is True):
                continue
            out[param] = quote(str(value).lower() if isinstance(value, bool) else str(value), safe=":/@")
        if self.credentials is not None:
            creds = self.credentials
            for param, secret in (("access-key", creds.access_key), ("secret-access-key", creds.secret_access_key),
                                  ("session-token", creds.session_token)):
                if secret is not None:
                    out[param] = quote(secret.get_secret_value(), safe="") if reveal else "***"
        return out


class LocalLocation(BaseModel):
    """A directory on this machine (or a shared mount); keys are relative paths under it."""
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["local"] = "local"
    path: str

    @field_validator("path")
    @classmethod
    def _check_path(cls, path: str) -> str:
        if not path.startswith("/"):
            raise ValueError("a local storage path must be absolute")
        parts = [p for p in path.split("/") if p]
        if any(p in (".", "..") for p in parts):
            raise ValueError("a local storage path must not contain '.' or '..' segments")
        return "/" + "/".join(parts)

    def root_uri(self) -> str:
        return f"local://{self.path}"

    def redacted(self) -> str:
        return self.root_uri()

    # --- what every location answers (br_common.storage.schemes) ---------------------------------
    @property
    def has_credentials(self) -> bool:
        return False

    def clean_url(self) -> str:
        return self.root_uri()

    def secret_values(self) -> list[str]:
        return []

    def revealed_credentials(self) -> bytes:
        raise ValueError("a local storage has no credentials")

    def with_revealed_credentials(self, plaintext: bytes) -> LocalLocation:
        raise ValueError("credentials were sent for a local storage")

    def allowlist_problem(self) -> str:
        return ""

    def covers(self, target: object) -> bool:
        return isinstance(target, LocalLocation) and path_under(self.path.strip("/"), target.path.strip("/"))

    def to_pb(self, *, with_credentials: bool = False) -> brpb_pb2.StorageBackend:
        return brpb_pb2.StorageBackend(local=brpb_pb2.Local(path=self.path))


Location = S3Location | LocalLocation  # a new backend adds its location here and in schemes.py
StorageLocation = Annotated[Location, Field(discriminator="kind")]
_LOCATION_ADAPTER: TypeAdapter[Location] = TypeAdapter(StorageLocation)


def path_under(prefix: str, path: str) -> bool:
    """`a/b` covers a/b and a/b/c, not a/bc; '' covers everything (both already normalized)."""
    return not prefix or path == prefix or path.startswith(prefix + "/")


def _endpoint(endpoint: str | None) -> tuple[str, str, int, str] | None:
    """Scheme, host, port and path, so http://Host:80/ and http://host are the same server."""
    if endpoint is None:
        return None
    parts = urlsplit(endpoint)
    port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    return parts.scheme.lower(), (parts.hostname or "").lower(), port, parts.path.rstrip("/")


def local_from_pb(backend: brpb_pb2.StorageBackend) -> LocalLocation:
    return _validated({"kind": "local", "path": backend.local.path})  # type: ignore[return-value]


def s3_from_pb(backend: brpb_pb2.StorageBackend) -> S3Location:
    """The inverse of S3Location.to_pb (credentials included when the message carries them)."""
    s3 = backend.s3
    data: dict[str, object] = {"kind": "s3", "bucket": s3.bucket, "prefix": s3.prefix,
                               "force_path_style": s3.force_path_style, "region": s3.region or DEFAULT_REGION}
    for field in ("endpoint", "storage_class", "sse", "sse_kms_key_id", "acl", "provider", "role_arn",
                  "external_id", "profile"):
        if getattr(s3, field):
            data[field] = getattr(s3, field)
    if s3.access_key or s3.secret_access_key:
        data["credentials"] = _credentials(s3.access_key, s3.secret_access_key, s3.session_token or None)
    return _validated(data)  # type: ignore[return-value]


def local_path(path: str, flags: S3Flags | None) -> LocalLocation:
    """A bare absolute path is a local storage (as in BR)."""
    if flags is not None and flags.given():
        raise ValueError("--s3.* flags apply only to s3:// storage")
    return _validated({"kind": "local", "path": path})  # type: ignore[return-value]


def parse_local_url(url: str, flags: S3Flags | None) -> LocalLocation:
    parts = urlsplit(url)
    if parts.netloc:
        raise ValueError("a local storage URL needs an absolute path: local:///absolute/path")
    if parts.query or parts.fragment:
        raise ValueError("a local storage URL takes no parameters")
    return local_path(unquote(parts.path), flags)


def parse_s3_url(url: str, flags: S3Flags | None) -> S3Location:
    if "#" in url:
        raise ValueError("the storage URL contains '#': percent-encode it as %23 in parameter values")
    rest = url.partition("://")[2]
    location, _, raw_query = rest.partition("?")
    bucket, _, prefix = location.partition("/")
    if not bucket:
        raise ValueError("the bucket is missing: use s3://bucket/prefix")
    if "@" in bucket:
        raise ValueError("credentials before the bucket are not supported: use ?access-key=..&secret-access-key=..")
    params = dict(flags.given()) if flags is not None else {}
    params.update(parse_query(raw_query))  # URL parameters win over flags
    data: dict[str, object] = {"kind": "s3", "bucket": unquote(bucket), "prefix": unquote(prefix)}
    data.update(_s3_fields(params))
    return _validated(data)  # type: ignore[return-value]


def parse_query(raw_query: str) -> dict[str, str]:
    """Query parameters by canonical name. Split by hand: urllib's parse_qs turns '+' into ' '."""
    params: dict[str, str] = {}
    for piece in raw_query.split("&"):
        if not piece:
            continue
        raw_key, sep, raw_value = piece.partition("=")
        key = unquote(raw_key).strip().lower().replace("_", "-")
        if key not in S3_PARAMS:
            raise ValueError(_unknown_param(key, bool(sep)))
        if not sep or not raw_value:
            raise ValueError(f"storage parameter {key} has no value")
        if key in params:
            raise ValueError(f"storage parameter {key} is given twice")
        params[key] = unquote(raw_value)
    return params


def _unknown_param(key: str, has_value: bool) -> str:
    """Name the parameter only when it looks like one: a stray piece may be part of a secret
    that held an unencoded '&'."""
    expected = "expected one of " + ", ".join(S3_PARAMS)
    if not has_value:
        return f"a storage URL parameter has no '=' (percent-encode '&' in values as %26); {expected}"
    if _PARAM_NAME_RE.match(key):
        return f"unknown storage parameter {key!r}: {expected}"
    return f"unknown storage parameter (not shown: percent-encode '&' in values as %26); {expected}"


def _s3_fields(params: dict[str, str]) -> dict[str, object]:
    fields: dict[str, object] = {}
    for key, value in params.items():
        if key in SECRET_PARAMS:
            continue
        fields[_field_name(key)] = _parse_bool(value) if key == "force-path-style" else value
    if fields.get("sse_kms_key_id") and "sse" not in fields:
        fields["sse"] = "aws:kms"  # a KMS key id implies KMS encryption
    access, secret, token = (params.get(p) for p in SECRET_PARAMS)
    if access or secret or token:
        if not access:
            raise ValueError("secret-access-key needs access-key" if secret else "session-token needs access-key")
        if not secret:
            raise ValueError("access-key needs secret-access-key")
        fields["credentials"] = _credentials(access, secret, token)
    return fields


def _credentials(access: str, secret: str, token: str | None) -> dict[str, object]:
    if not access or not secret:
        raise ValueError("access-key and secret-access-key must be given together")
    return {"access_key": access, "secret_access_key": secret, "session_token": token}


def _parse_bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("true", "1", "yes", "on"):
        return True
    if lowered in ("false", "0", "no", "off"):
        return False
    raise ValueError("force-path-style must be true or false")


def _validated(data: dict[str, object]) -> Location:
    """Validate through pydantic, turning its multi-line error (which may quote input) into one line."""
    try:
        return _LOCATION_ADAPTER.validate_python(data)
    except ValidationError as exc:
        raise ValueError(_describe(exc)) from None


def _describe(exc: ValidationError) -> str:
    error = exc.errors(include_url=False, include_input=False, include_context=False)[0]
    loc = [str(part) for part in error["loc"] if part not in ("s3", "local")]
    message = error["msg"].removeprefix("Value error, ")
    if not loc:
        return message
    name = param_name(loc[-1])
    if name == "path":
        return message
    return f"storage parameter {name}: {message}"
