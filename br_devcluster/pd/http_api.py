"""PD's HTTP API, the part br uses: POST /pd/api/v1/admin/reset-ts (BR's restore moves PD's TSO
past a restored backup with it), with PD's answers: 200 "Reset ts successfully.", 400 for a bad
body ("invalid tso value", "invalid force-use-larger value"), 403 with the oracle's refusal.

A real PD serves HTTP and gRPC on its one client port (cmux); grpcio cannot share a port with an
HTTP/1.1 server, so this one listens on a port of its own and PD advertises it as a second client
URL in GetMembers (after the gRPC one, which gRPC clients take first). br posts to the leader's
client URLs in order, so against a real PD the first answers.
"""
from __future__ import annotations

import json
import logging
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from br_common.grpc_tls import TLSConfig
from br_devcluster.pd.tso import TsoAllocator, TsoResetError

log = logging.getLogger(__name__)

RESET_TS_PATH = "/pd/api/v1/admin/reset-ts"
MAX_BODY = 1 << 20


def serve(host: str, port: int, tso: TsoAllocator, tls: TLSConfig) -> ThreadingHTTPServer:
    """Start serving in a daemon thread (port 0: any free port, see server.server_address)."""
    server = ThreadingHTTPServer((host, port), _handler(tso))
    server.daemon_threads = True
    if tls.cert:
        server.socket = _tls_context(tls).wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, args=(0.1,), name="pd-http", daemon=True).start()
    return server


def url_of(server: ThreadingHTTPServer, tls: TLSConfig) -> str:
    host, port = server.server_address[:2]
    return f"{'https' if tls.cert else 'http'}://{host}:{port}"


def _tls_context(tls: TLSConfig) -> ssl.SSLContext:
    """As the gRPC port: the server certificate, and with a CA clients must present one it signed."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tls.cert, tls.key)
    if tls.ca:
        context.load_verify_locations(tls.ca)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def reset_ts(tso: TsoAllocator, body: bytes) -> tuple[int, str]:
    """PD's adminHandler.ResetTS: (status, the JSON string it renders)."""
    try:
        request = json.loads(body or b"null")
    except ValueError as exc:
        return 400, str(exc)
    value = request.get("tso") if isinstance(request, dict) else None
    if not isinstance(value, str) or not value.isdigit() or int(value) >= 1 << 64:
        return 400, "invalid tso value"
    force = request.get("force-use-larger", False)
    if not isinstance(force, bool):
        return 400, "invalid force-use-larger value"
    try:
        tso.reset(int(value), ignore_smaller=force, skip_upper_bound=force)
    except TsoResetError as exc:
        return 403, f"[PD:tso:ErrResetUserTimestamp]reset user timestamp failed, {exc}"
    log.info("reset ts to %s (force-use-larger %s)", value, force)
    return 200, "Reset ts successfully."


def _handler(tso: TsoAllocator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            if self.path.split("?", 1)[0] != RESET_TS_PATH:
                self._answer(404, "404 page not found", "text/plain")
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self._answer(400, "request body too large", "text/plain")
                return
            status, text = reset_ts(tso, self.rfile.read(length))
            self._answer(status, json.dumps(text), "application/json; charset=UTF-8")

        def do_GET(self) -> None:  # noqa: N802
            self._answer(404, "404 page not found", "text/plain")

        def _answer(self, status: int, text: str, content_type: str) -> None:
            data = text.encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            log.debug("http: " + format, *args)

    return Handler
