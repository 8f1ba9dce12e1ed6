"""botocore/s3transfer exceptions -> one-line StorageErrors that say what to do.

Messages name the object and the S3 error code, never a secret: the server's text is cut to
one line and scrubbed of the location's credential values.
"""
from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError, ConnectionClosedError, ConnectTimeoutError, \
    EndpointConnectionError, NoCredentialsError, PartialCredentialsError, ProfileNotFound, ReadTimeoutError, \
    SSLError

from br_common.storage.base import ObjectNotFound, StorageError

# IAM action each operation needs (the seed's minimum policies)
ACTIONS = {
    "upload": "s3:PutObject", "write": "s3:PutObject", "create": "s3:PutObject",
    "list": "s3:ListBucket", "check": "s3:ListBucket",
    "download": "s3:GetObject", "read": "s3:GetObject",
}
CREDENTIAL_CODES = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken",
                    "TokenRefreshRequired", "InvalidClientTokenId", "AuthFailure"}
NOT_FOUND_CODES = {"NoSuchKey", "404", "NotFound"}
BUSY_CODES = {"SlowDown", "503", "ServiceUnavailable", "RequestTimeout", "InternalError", "500",
              "RequestTimeTooSkewed", "Throttling", "ThrottlingException"}
REGION_CODES = {"PermanentRedirect", "AuthorizationHeaderMalformed", "IllegalLocationConstraintException", "301"}
MAX_SERVER_TEXT = 200


class S3Target:
    """What an operation was about, for messages."""

    def __init__(self, op: str, bucket: str, full_key: str, uri: str, endpoint: str | None,
                 secrets: list[str], attempts: int) -> None:
        self.op, self.bucket, self.full_key, self.uri = op, bucket, full_key, uri
        self.endpoint, self.secrets, self.attempts = endpoint, secrets, attempts

    def resource_arn(self) -> str:
        action = ACTIONS.get(self.op, "")
        if action == "s3:ListBucket" or not self.full_key:
            return f"arn:aws:s3:::{self.bucket}"
        return f"arn:aws:s3:::{self.bucket}/{self.full_key}"

    def scrub(self, text: str) -> str:
        text = " ".join(text.split())[:MAX_SERVER_TEXT]
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text


def translate(exc: BaseException, target: S3Target) -> StorageError:
    if isinstance(exc, StorageError):
        return exc
    if isinstance(exc, ClientError):
        return _client_error(exc, target)
    return _other_error(exc, target)


def _client_error(exc: ClientError, t: S3Target) -> StorageError:
    error = exc.response.get("Error", {})
    code = str(error.get("Code") or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "?"))
    server = t.scrub(str(error.get("Message", "")))
    head = f"{t.op} {t.uri} failed ({code})"
    if code in NOT_FOUND_CODES:
        return ObjectNotFound(f"{t.uri} does not exist", code="NoSuchKey")
    if code == "NoSuchBucket":
        return StorageError(f"{head}: bucket {t.bucket} does not exist; check the storage URL, endpoint and region",
                            code=code)
    if code in CREDENTIAL_CODES:
        return StorageError(f"{head}: the credentials were rejected; check access-key/secret-access-key, "
                            f"the profile or the instance role", code=code)
    if code in ("AccessDenied", "403", "AllAccessDisabled", "AccountProblem"):
        action = ACTIONS.get(t.op, "the right s3 action")
        return StorageError(f"{head}: access denied; check the IAM policy: it needs {action} on "
                            f"{t.resource_arn()}", code=code)
    if code in REGION_CODES:
        return StorageError(f"{head}: the bucket is in another region; set region= in the storage URL", code=code)
    if code in BUSY_CODES:
        return StorageError(f"{head} after {t.attempts} attempts: S3 is throttling or unavailable; retry later "
                            f"or lower --concurrency/--ratelimit", code=code)
    if code == "InvalidObjectState":
        return StorageError(f"{head}: the object is archived (e.g. GLACIER); restore it in S3 first", code=code)
    return StorageError(f"{head}: {server}" if server else head, code=code)


def _other_error(exc: BaseException, t: S3Target) -> StorageError:
    name = type(exc).__name__
    where = t.endpoint or "S3"
    if isinstance(exc, NoCredentialsError):
        return StorageError(f"{t.op} {t.uri} failed: no AWS credentials found; attach an instance role, set "
                            f"AWS_PROFILE or AWS_ACCESS_KEY_ID, or pass access-key/secret-access-key", code=name)
    if isinstance(exc, PartialCredentialsError):
        return StorageError(f"{t.op} {t.uri} failed: incomplete AWS credentials ({t.scrub(str(exc))})", code=name)
    if isinstance(exc, ProfileNotFound):
        return StorageError(f"{t.op} {t.uri} failed: {t.scrub(str(exc))}; check profile= and ~/.aws/config",
                            code=name)
    if isinstance(exc, SSLError):
        return StorageError(f"{t.op} {t.uri} failed: TLS to {where} failed; check the endpoint's scheme and "
                            f"AWS_CA_BUNDLE", code=name)
    if isinstance(exc, (EndpointConnectionError, ConnectTimeoutError, ConnectionClosedError, ReadTimeoutError)):
        return StorageError(f"{t.op} {t.uri} failed: cannot reach {where} ({name}) after {t.attempts} attempts; "
                            f"check endpoint= and the network", code=name)
    if isinstance(exc, OSError) and not isinstance(exc, BotoCoreError):
        return StorageError(f"{t.op} {t.uri} failed: {exc.strerror or name}"
                            + (f" ({exc.filename})" if exc.filename else ""), code=name)
    return StorageError(f"{t.op} {t.uri} failed ({name}): {t.scrub(str(exc))}", code=name)
