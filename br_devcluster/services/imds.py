"""A loopback EC2 instance-metadata service (IMDSv2) serving one role's credentials.

Run: python -m br_devcluster.services.imds --port P --credentials-file F [--role NAME]
boto3's default chain reaches it through AWS_EC2_METADATA_SERVICE_ENDPOINT when nothing else
provides credentials (see instance_profile_env). The keys come from a JSON file re-read on every
request (so a test can rotate them), never from argv, so they never show in process titles.
File: {"AccessKeyId": "...", "SecretAccessKey": "...", "Token": "...", "Expiration": optional ISO-8601}.
Only IMDSv2 is served: a GET without a valid session token gets 401, like HttpTokens=required.
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import threading
import time
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from br_devcluster.services._launch import HOST, pick_port, start_and_wait, write_private
from br_devcluster.services.handle import ServiceHandle

TOKEN_PATH = "/latest/api/token"
CREDENTIALS_PATH = "/latest/meta-data/iam/security-credentials/"
TTL_HEADER = "X-aws-ec2-metadata-token-ttl-seconds"
TOKEN_HEADER = "X-aws-ec2-metadata-token"
MAX_TTL = 21600
DEFAULT_ROLE = "br-agent"
# variables that would give boto3 credentials before the instance role (or point it elsewhere)
AWS_CREDENTIAL_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
                      "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE",
                      "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                      "AWS_CONTAINER_AUTHORIZATION_TOKEN", "AWS_EC2_METADATA_DISABLED",
                      "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE")


class RoleCredentials(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    access_key_id: str = Field(alias="AccessKeyId", min_length=1)
    secret_access_key: str = Field(alias="SecretAccessKey", min_length=1)
    token: str = Field(default="", alias="Token")
    expiration: str | None = Field(default=None, alias="Expiration")

    def imds_document(self) -> dict[str, str]:
        now = datetime.now(timezone.utc)
        # far in the future: botocore refreshes credentials that expire within ~15 minutes
        expiration = self.expiration or _iso(now + timedelta(days=365))
        return {"Code": "Success", "LastUpdated": _iso(now), "Type": "AWS-HMAC",
                "AccessKeyId": self.access_key_id, "SecretAccessKey": self.secret_access_key,
                "Token": self.token, "Expiration": expiration}


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class _Tokens:
    """IMDSv2 session tokens with their expiry."""

    def __init__(self) -> None:
        self._expiry: dict[str, float] = {}
        self._lock = threading.Lock()

    def issue(self, ttl: int) -> str:
        token = secrets.token_urlsafe(32)
        with self._lock:
            now = time.monotonic()
            self._expiry = {t: e for t, e in self._expiry.items() if e > now}
            self._expiry[token] = now + ttl
        return token

    def valid(self, token: str | None) -> bool:
        with self._lock:
            return token is not None and self._expiry.get(token, 0) > time.monotonic()


def make_handler(credentials_file: Path, role: str) -> type[BaseHTTPRequestHandler]:
    tokens = _Tokens()

    class Handler(BaseHTTPRequestHandler):
        server_version = "br-imds"

        def do_PUT(self) -> None:
            if self.path != TOKEN_PATH:
                return self._answer(404, "not found")
            try:
                ttl = int(self.headers.get(TTL_HEADER, ""))
            except ValueError:
                return self._answer(400, f"missing or bad {TTL_HEADER}")
            if not 1 <= ttl <= MAX_TTL:
                return self._answer(400, f"{TTL_HEADER} must be 1..{MAX_TTL}")
            self._answer(200, tokens.issue(ttl), {TTL_HEADER: str(ttl)})

        def do_GET(self) -> None:
            if not tokens.valid(self.headers.get(TOKEN_HEADER)):
                return self._answer(401, "IMDSv2 session token required")
            if self.path == CREDENTIALS_PATH:
                return self._answer(200, role)
            if self.path == CREDENTIALS_PATH + role:
                return self._credentials()
            self._answer(404, "not found")

        def _credentials(self) -> None:
            try:
                creds = RoleCredentials.model_validate_json(credentials_file.read_bytes())
            except (OSError, ValidationError):
                self.log_message("cannot read credentials from %s", credentials_file)
                return self._answer(500, "credentials unavailable")
            self._answer(200, json.dumps(creds.imds_document()), {"Content-Type": "application/json"})

        def _answer(self, status: int, body: str, headers: Mapping[str, str] | None = None) -> None:
            data = body.encode()
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


def serve(host: str, port: int, credentials_file: Path, role: str) -> None:
    server = ThreadingHTTPServer((host, port), make_handler(credentials_file, role))
    server.daemon_threads = True
    try:
        server.serve_forever()
    finally:
        server.server_close()


def start_imds(work_dir: Path, credentials: RoleCredentials | Mapping[str, str], *, role: str = DEFAULT_ROLE,
               port: int | None = None) -> ServiceHandle:
    """Write the credentials to a 0600 file and start the server; handle.url is the endpoint."""
    work_dir = Path(work_dir)
    creds = credentials if isinstance(credentials, RoleCredentials) else RoleCredentials.model_validate(credentials)
    creds_file = write_private(work_dir / "imds-credentials.json", creds.model_dump_json(by_alias=True))
    port = pick_port(port)
    args = [sys.executable, "-m", "br_devcluster.services.imds", "--host", HOST, "--port", str(port),
            "--credentials-file", str(creds_file), "--role", role]
    log_path = work_dir / "imds.log"
    pid = start_and_wait("imds", args, log_path, port, cwd=work_dir)
    return ServiceHandle(name="imds", pid=pid, address=f"{HOST}:{port}", url=f"http://{HOST}:{port}",
                         log_path=log_path, args=args, data_dir=work_dir, stop_timeout=5.0)


def instance_profile_env(endpoint: str, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """An environment where boto3's default chain ends at this IMDS: every AWS credential variable
    removed, shared files pointed at nothing, the metadata endpoint set."""
    env = {k: v for k, v in (os.environ if base is None else base).items() if k not in AWS_CREDENTIAL_ENV}
    env["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = endpoint
    env["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    env["AWS_CONFIG_FILE"] = os.devnull
    return env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m br_devcluster.services.imds",
                                     description="Loopback EC2 instance-metadata (IMDSv2) credentials server")
    parser.add_argument("--host", default=HOST)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--credentials-file", type=Path, required=True,
                        help="JSON with AccessKeyId, SecretAccessKey, Token (re-read on every request)")
    parser.add_argument("--role", default=DEFAULT_ROLE)
    args = parser.parse_args(argv)
    if not args.credentials_file.is_file():
        parser.error(f"credentials file {args.credentials_file} does not exist")
    try:
        serve(args.host, args.port, args.credentials_file, args.role)
    except OSError as exc:
        print(f"imds: cannot listen on {args.host}:{args.port}: {exc.strerror}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
