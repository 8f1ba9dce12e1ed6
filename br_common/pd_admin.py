"""PD's HTTP admin API, the one call br needs: move PD's TSO forward (POST /pd/api/v1/admin/reset-ts
with {"tso": "<uint64>"}), as BR's restore does (pdutil.ResetTS, retried 16 times with backoff).

PD serves HTTP on its client URLs (the gRPC port; http:// or https:// with TLS), and forwards admin
calls to its leader; br posts to the leader's client URLs from GetMembers, in order, until one
answers. PD's answers: 200 done; 403 refused (the ts is not above its current one, or more than
max-reset-ts-gap, 24h, ahead; "force-use-larger" lifts both, and br never sends it: jumping PD far
ahead is the operator's decision); 400 a malformed body. A 403 may mean PD is already past the ts,
so the caller reads the TSO again rather than trust the status.

    answer = reset_ts(["http://10.0.1.1:2379"], ts, tls)   # ResetAnswer(status=200, text=...)
"""
from __future__ import annotations

import http.client
import json
import ssl
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

from br_common.grpc_tls import TLSConfig

RESET_TS_PATH = "/pd/api/v1/admin/reset-ts"
ATTEMPTS = 16  # BR's resetTsRetryTime
FIRST_PAUSE, MAX_PAUSE = 0.05, 0.5  # BR's resetTSWaitInterval, resetTSMaxWaitInterval
TIMEOUT = 10.0  # seconds per request


class PDAdminError(RuntimeError):
    """No client URL of PD answered over HTTP (one line, the last problem)."""


@dataclass(frozen=True)
class ResetAnswer:
    url: str  # the endpoint that answered
    status: int  # 200 done, 403 refused, 400 bad request (PD's statuses)
    text: str  # PD's message (its JSON string decoded)

    @property
    def accepted(self) -> bool:
        return self.status == 200


def http_urls(client_urls: list[str], tls: TLSConfig | None) -> list[str]:
    """PD's client URLs as HTTP base URLs (a bare host:port gets the scheme the TLS setting implies)."""
    scheme = "https" if tls is not None and tls.enabled else "http"
    return [(u if "://" in u else f"{scheme}://{u}").rstrip("/") for u in client_urls if u]


def reset_ts(client_urls: list[str], ts: int, tls: TLSConfig | None = None, attempts: int = ATTEMPTS) -> ResetAnswer:
    """Ask PD to move its TSO to ts. Any HTTP answer is returned (the caller reads PD's TSO to see
    the effect); unreachable URLs and 5xx are retried round the URLs, then PDAdminError."""
    urls = http_urls(client_urls, tls)
    if not urls:
        raise PDAdminError("PD's leader advertises no client URL")
    body = json.dumps({"tso": str(ts)}).encode()
    pause, problem = FIRST_PAUSE, ""
    for attempt in range(attempts):
        url = urls[attempt % len(urls)] + RESET_TS_PATH
        try:
            answer = _post(url, body, tls)
        except (OSError, ValueError, http.client.HTTPException) as exc:  # refused, reset, TLS, not HTTP at all
            problem = f"{url}: {_reason(exc)}"
        else:
            if answer.status < 500:
                return answer
            problem = f"{url}: HTTP {answer.status} {answer.text}"
        if attempt % len(urls) == len(urls) - 1:  # every URL tried once more: back off
            time.sleep(pause)
            pause = min(pause * 2, MAX_PAUSE)
    raise PDAdminError(f"PD's HTTP API did not answer ({problem})")


def _post(url: str, body: bytes, tls: TLSConfig | None) -> ResetAnswer:
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
    context = _ssl_context(tls) if url.startswith("https://") else None
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT, context=context) as response:  # noqa: S310
            return ResetAnswer(url, response.status, _text(response.read()))
    except urllib.error.HTTPError as exc:  # 4xx/5xx: PD's answer
        return ResetAnswer(url, exc.code, _text(exc.read()))


def _ssl_context(tls: TLSConfig | None) -> ssl.SSLContext:
    """The CA and client certificate br uses for PD's gRPC (--ca/--cert/--key)."""
    context = ssl.create_default_context(cafile=tls.ca if tls is not None and tls.ca else None)
    if tls is not None and tls.cert:
        context.load_cert_chain(tls.cert, tls.key)
    return context


def _text(data: bytes) -> str:
    """PD renders its messages as JSON strings; anything else is shown as sent (one line)."""
    text = data.decode(errors="replace").strip()
    try:
        decoded = json.loads(text)
    except ValueError:
        decoded = text
    return " ".join(str(decoded).split())[:300]


def _reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.URLError):
        exc = exc.reason if isinstance(exc.reason, BaseException) else exc
    return " ".join((str(exc) or type(exc).__name__).split())
