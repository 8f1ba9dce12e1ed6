"""Which transactional backup a target cluster was last restored to, so that an incremental
backup is applied only onto its base (BR leaves this to the operator: "make sure that all the
data backed up before LAST_BACKUP_TS has been restored"; applying it onto anything else leaves a
cluster that matches no backup).

A completed txn restore records its backup's end_version in a Redis key every coordinator of the
fleet shares (`br:cluster:<id>:restored-txn-ts`, beside the cluster's restore lease); an
incremental backup (changes in (start_version, end_version]) is refused unless the target was
restored exactly to its start_version, and once applied moves the record on, so a chain full +
increments goes in order. A cluster restored by other means has no record: refused, one line.
"""
from __future__ import annotations

import redis

from br_common.kvproto import brpb_pb2
from br_coordinator.errors import CommandError


def _key(cluster_id: int) -> str:
    return f"br:cluster:{cluster_id}:restored-txn-ts"


def restored_to(client: redis.Redis, cluster_id: int) -> int:
    """The end_version of the last txn backup restored into the cluster (0: none recorded)."""
    value = client.get(_key(cluster_id))
    return int(value) if value else 0


def record(client: redis.Redis, cluster_id: int, meta: brpb_pb2.BackupMeta) -> None:
    client.set(_key(cluster_id), str(meta.end_version))


def check_base(client: redis.Redis, cluster_id: int, meta: brpb_pb2.BackupMeta, where: str) -> None:
    """An incremental backup applies onto the backup whose end version is its start version."""
    base = restored_to(client, cluster_id)
    if base == meta.start_version:
        return
    was = f"was last restored to ts {base}" if base else "holds no txn backup restored by br-fleet"
    raise CommandError(f"{where} is an incremental backup of the changes after ts {meta.start_version}, but cluster "
                       f"{cluster_id} {was}: restore its base first (the backup whose end version is "
                       f"{meta.start_version}), then the increments in order")
