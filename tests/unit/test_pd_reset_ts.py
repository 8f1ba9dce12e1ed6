"""Moving PD's TSO past a restored backup: br_common.pd_admin's HTTP call (stub servers), the
devcluster PD's reset-ts with PD's semantics, and restore's ensure_tso_past over both."""
from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from br_common import pd_admin
from br_common.grpc_tls import PLAIN
from br_common.kvproto import pdpb_pb2
from br_common.tso import compose
from br_coordinator.errors import CommandError
from br_coordinator.restore import ensure_tso_past
from br_devcluster.pd import http_api
from br_devcluster.pd.tso import MAX_RESET_TS_GAP_MS, TsoAllocator, TsoResetError

NOW_MS = 1_700_000_000_000


class Clock:
    def __init__(self, ms: int) -> None:
        self.ms = ms

    def __call__(self) -> int:
        return self.ms


@pytest.fixture
def tso(tmp_path: Path) -> TsoAllocator:
    return TsoAllocator(tmp_path / "tso.json", Clock(NOW_MS))


def _ts(tso: TsoAllocator) -> int:
    return compose(*tso.allocate(1))


# --- the devcluster's oracle: PD's resetUserTimestamp -------------------------------------------
def test_reset_moves_forward_only_within_the_gap_unless_forced(tso: TsoAllocator) -> None:
    current = _ts(tso)
    with pytest.raises(TsoResetError, match="counter is smaller than now"):
        tso.reset(current)
    with pytest.raises(TsoResetError, match="ts is smaller than now"):
        tso.reset(compose(NOW_MS - 1, 5))
    with pytest.raises(TsoResetError, match="too larger than now"):
        tso.reset(compose(NOW_MS + MAX_RESET_TS_GAP_MS, 0))
    tso.reset(compose(NOW_MS - 1, 5), ignore_smaller=True)  # force-use-larger: nothing to do
    assert _ts(tso) == current + 1
    target = compose(NOW_MS + 60_000, 7)
    tso.reset(target)
    assert _ts(tso) == target + 1  # the next timestamp is above the reset one
    far = compose(NOW_MS + 2 * MAX_RESET_TS_GAP_MS, 0)
    tso.reset(far, ignore_smaller=True, skip_upper_bound=True)
    assert _ts(tso) > far


@pytest.mark.parametrize(("body", "status", "text"), [
    (b'{"tso": 5}', 400, "invalid tso value"),
    (b'{"tso": "abc"}', 400, "invalid tso value"),
    (b'{"tso": "1", "force-use-larger": "yes"}', 400, "invalid force-use-larger value"),
    (b"{", 400, "Expecting"),
    (b'{"tso": "1"}', 403, "reset user timestamp failed, the specified ts is smaller than now"),
])
def test_the_http_handler_answers_as_pd(tso: TsoAllocator, body: bytes, status: int, text: str) -> None:
    got_status, got_text = http_api.reset_ts(tso, body)
    assert got_status == status and text in got_text


# --- br's HTTP call --------------------------------------------------------------------------------
@pytest.fixture
def pd_http(tso: TsoAllocator) -> Iterator[str]:
    server = http_api.serve("127.0.0.1", 0, tso, PLAIN)
    yield http_api.url_of(server, PLAIN)
    server.shutdown()


def _closed_port() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


def test_reset_ts_posts_pds_body_and_skips_urls_that_do_not_answer(tso: TsoAllocator, pd_http: str) -> None:
    target = compose(NOW_MS + 5000, 0)
    answer = pd_admin.reset_ts([f"http://{_closed_port()}", pd_http], target)
    assert answer.accepted and answer.url.startswith(pd_http) and answer.text == "Reset ts successfully."
    assert _ts(tso) == target + 1
    refused = pd_admin.reset_ts([pd_http], target)
    assert refused.status == 403 and "smaller than now" in refused.text


def test_reset_ts_retries_server_errors_then_gives_up_in_one_line() -> None:
    seen: list[dict] = []

    class Flaky(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            seen.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            status = 500 if len(seen) < 3 else 200
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b'""')

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Flaky)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        host, port = server.server_address[:2]
        assert pd_admin.reset_ts([f"{host}:{port}"], 42).status == 200  # a bare host:port gets http://
        assert seen == [{"tso": "42"}] * 3  # the uint64 as a string, as PD reads it
    finally:
        server.shutdown()
    with pytest.raises(pd_admin.PDAdminError, match="did not answer") as err:
        pd_admin.reset_ts([_closed_port()], 42, attempts=2)
    assert "\n" not in str(err.value)


# --- restore: wait, reset, read again ------------------------------------------------------------
class FakePD:
    """What ensure_tso_past uses of PDClient, over the oracle the HTTP API resets."""

    def __init__(self, tso: TsoAllocator, urls: list[str]) -> None:
        self._tso, self.tls = tso, PLAIN
        self._member = pdpb_pb2.Member(client_urls=urls)

    def tso(self) -> int:
        return _ts(self._tso)

    def members(self) -> pdpb_pb2.GetMembersResponse:
        return pdpb_pb2.GetMembersResponse(leader=self._member)


def test_a_lagging_pd_is_moved_past_the_end_version(tso: TsoAllocator, pd_http: str) -> None:
    end_version = compose(NOW_MS + 30_000, 3)  # the backup's source clock ran 30 s ahead
    pd = FakePD(tso, [f"http://{_closed_port()}", pd_http])
    ensure_tso_past(pd, end_version, patience=0)
    assert pd.tso() > end_version


@pytest.mark.parametrize(("ahead_ms", "words"), [
    (2 * MAX_RESET_TS_GAP_MS, "PD did not move it \\(reset-ts: HTTP 403 .*too larger than now\\).*force-use-larger"),
    (30_000, "br could not move it: PD's HTTP API did not answer"),
])
def test_a_pd_that_refuses_or_cannot_be_reached_is_refused(tso: TsoAllocator, pd_http: str, ahead_ms: int,
                                                            words: str, monkeypatch: pytest.MonkeyPatch) -> None:
    urls = [pd_http] if "403" in words else [f"http://{_closed_port()}"]
    monkeypatch.setattr(pd_admin.reset_ts, "__defaults__", (None, 2))
    with pytest.raises(CommandError, match=words) as err:
        ensure_tso_past(FakePD(tso, urls), compose(NOW_MS + ahead_ms, 0), patience=0)
    assert "\n" not in str(err.value)
