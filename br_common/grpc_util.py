"""gRPC options shared by every client and server of the project."""
from __future__ import annotations

MAX_MESSAGE_BYTES = 256 * 1024 * 1024  # gRPC's 4 MiB default is too small for scans and file lists

# metadata key carrying the read timestamp of RawGet/RawScan/RawChecksum on the devcluster;
# kvproto's raw requests have no ts field, and a real TiKV ignores unknown metadata.
READ_TS_METADATA = "x-br-read-ts"


def channel_options() -> list[tuple[str, int]]:
    return [
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.keepalive_time_ms", 30_000),
    ]
