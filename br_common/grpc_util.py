"""gRPC options shared by every client and server of the project."""
from __future__ import annotations

MAX_MESSAGE_BYTES = 256 * 1024 * 1024  # gRPC's 4 MiB default is too small for scans and file lists

# gRPC's reconnect backoff grows to 120 s: after a PD or store restart, every client that saw it
# down (stores, agents, br) would keep failing for up to two minutes although the server is back.
# Capped at 2 s, a restarted server is picked up within about 2 s.
RECONNECT_BACKOFF_MS = (200, 2_000)


def channel_options() -> list[tuple[str, int]]:
    return [
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.initial_reconnect_backoff_ms", RECONNECT_BACKOFF_MS[0]),
        ("grpc.min_reconnect_backoff_ms", RECONNECT_BACKOFF_MS[0]),
        ("grpc.max_reconnect_backoff_ms", RECONNECT_BACKOFF_MS[1]),
    ]
