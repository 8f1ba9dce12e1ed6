"""boto3 sessions and clients for an S3Location: which credentials, which endpoint, which retries.

Credentials, in order: the URL's keys; else the named profile; else boto3's default chain
(environment, shared files, container/instance role through IMDSv2). With role-arn, those
credentials are only the source of an STS AssumeRole whose result refreshes itself.
"""
from __future__ import annotations

import boto3
import botocore.session
from botocore.config import Config
from botocore.credentials import AssumeRoleCredentialFetcher, CredentialProvider, CredentialResolver, \
    Credentials, DeferredRefreshableCredentials
from botocore.exceptions import NoCredentialsError

from br_common.storage.options import StorageOptions
from br_common.storage.url import S3Location

ROLE_SESSION_NAME = "br-fleet"


def make_session(location: S3Location) -> boto3.Session:
    """Raises botocore's ProfileNotFound for a missing profile (translated by the caller)."""
    if location.credentials is not None:
        creds = location.credentials
        base = boto3.Session(
            aws_access_key_id=creds.access_key.get_secret_value(),
            aws_secret_access_key=creds.secret_access_key.get_secret_value(),
            aws_session_token=creds.session_token.get_secret_value() if creds.session_token else None,
            region_name=location.region)
    else:
        base = boto3.Session(profile_name=location.profile, region_name=location.region)
    return _assume_role(base, location) if location.role_arn else base


def client_config(location: S3Location, options: StorageOptions) -> Config:
    return Config(
        region_name=location.region,
        signature_version="s3v4",
        retries={"mode": options.retry_mode, "max_attempts": options.max_attempts},
        # the body is not hashed into the SigV4 signature, as boto3 already does over HTTPS: every
        # write carries a checksum S3 verifies, and backupmeta holds each file's sha256 (over plain
        # HTTP boto3 would otherwise read and hash every byte once more: about 1 CPU-s per GB)
        s3={"addressing_style": "path" if location.force_path_style else "virtual",
            "payload_signing_enabled": False},
        # explicit, not left to the boto3 version's default: every PUT/part carries a checksum
        request_checksum_calculation="when_supported",
        response_checksum_validation="when_supported",
        connect_timeout=options.connect_timeout,
        read_timeout=options.read_timeout,
        tcp_keepalive=True,
        max_pool_connections=options.max_concurrency + 4,
        user_agent_extra="br-fleet",
    )


def make_client(location: S3Location, options: StorageOptions):  # -> S3Client (no stubs installed)
    session = make_session(location)
    return session.client("s3", endpoint_url=location.endpoint, config=client_config(location, options))


def sts_endpoint(location: S3Location) -> str | None:
    """S3-compatible servers (MinIO, Ceph, moto) serve STS on their S3 endpoint; AWS has its own."""
    if location.endpoint and (location.provider or "").lower() != "aws":
        return location.endpoint
    return None


class _FixedProvider(CredentialProvider):
    METHOD = "assume-role"

    def __init__(self, credentials: Credentials) -> None:
        super().__init__()
        self._credentials = credentials

    def load(self) -> Credentials:
        return self._credentials


def _assume_role(base: boto3.Session, location: S3Location) -> boto3.Session:
    source = base.get_credentials()
    if source is None:
        raise NoCredentialsError()
    extra: dict[str, str] = {"RoleSessionName": ROLE_SESSION_NAME}
    if location.external_id:
        extra["ExternalId"] = location.external_id

    def create_client(service: str, **kwargs: object):
        return base.client(service, region_name=location.region, endpoint_url=sts_endpoint(location),
                           config=Config(retries={"mode": "standard", "max_attempts": 10}), **kwargs)

    fetcher = AssumeRoleCredentialFetcher(client_creator=create_client, source_credentials=source,
                                          role_arn=location.role_arn, extra_args=extra)
    refreshing = DeferredRefreshableCredentials(refresh_using=fetcher.fetch_credentials, method="assume-role")
    core = botocore.session.Session()
    core.register_component("credential_provider", CredentialResolver([_FixedProvider(refreshing)]))
    return boto3.Session(botocore_session=core, region_name=location.region)
