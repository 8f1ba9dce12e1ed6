"""br_coordinator.restore_base: an incremental txn backup is applied only onto its base, in order."""
from __future__ import annotations

import fakeredis
import pytest

from br_common.kvproto import brpb_pb2
from br_coordinator import restore_base
from br_coordinator.errors import CommandError


def _meta(start: int, end: int) -> brpb_pb2.BackupMeta:
    return brpb_pb2.BackupMeta(start_version=start, end_version=end, is_txn_kv=True)


def test_a_chain_goes_in_order_and_nothing_else_applies() -> None:
    client = fakeredis.FakeRedis()
    with pytest.raises(CommandError, match="holds no txn backup restored by br-fleet: restore its base first"):
        restore_base.check_base(client, 7, _meta(10, 20), "s3://b/i1/backupmeta")
    restore_base.record(client, 7, _meta(0, 10))  # the full backup
    restore_base.check_base(client, 7, _meta(10, 20), "s3://b/i1/backupmeta")
    restore_base.record(client, 7, _meta(10, 20))
    with pytest.raises(CommandError, match="was last restored to ts 20") as err:
        restore_base.check_base(client, 7, _meta(10, 20), "s3://b/i1/backupmeta")  # applied twice
    assert "\n" not in str(err.value)
    restore_base.check_base(client, 7, _meta(20, 30), "s3://b/i2/backupmeta")
    assert restore_base.restored_to(client, 8) == 0  # per cluster
