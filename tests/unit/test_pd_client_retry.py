"""PDClient rides out a PD restart: UNAVAILABLE calls are retried within retry_for."""
from __future__ import annotations

import grpc
import pytest

from br_common import pd_client
from br_common.kvproto import pdpb_pb2


def test_pd_calls_ride_out_a_restart_within_retry_for(monkeypatch) -> None:  # noqa: ANN001
    """UNAVAILABLE (PD restarting: nothing was delivered) is retried with backoff for `retry_for`
    seconds; any other failure, or one past the budget, is a PDError at once."""
    class Down(grpc.RpcError):
        def __init__(self, code: grpc.StatusCode) -> None:
            self._code = code

        def code(self) -> grpc.StatusCode:
            return self._code

        def details(self) -> str:
            return "down"

    answers = [Down(grpc.StatusCode.UNAVAILABLE), Down(grpc.StatusCode.UNAVAILABLE), pdpb_pb2.GetMembersResponse()]

    def get_members(request, timeout):  # noqa: ANN001, ANN202
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    monkeypatch.setattr(pd_client.time, "sleep", lambda s: None)
    client = pd_client.PDClient.__new__(pd_client.PDClient)
    client.timeout, client.retry_for, client.cluster_id, client._caller_id = 1.0, 10.0, 1, "t"
    client._stub = type("Stub", (), {"GetMembers": staticmethod(get_members)})()
    assert client.members() == pdpb_pb2.GetMembersResponse() and not answers
    answers[:] = [Down(grpc.StatusCode.INVALID_ARGUMENT)]
    with pytest.raises(pd_client.PDError, match="INVALID_ARGUMENT"):
        client.members()
    client.retry_for = 0.0
    answers[:] = [Down(grpc.StatusCode.UNAVAILABLE)]
    with pytest.raises(pd_client.PDError, match="UNAVAILABLE"):
        client.members()
