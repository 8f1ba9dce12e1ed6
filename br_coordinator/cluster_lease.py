"""One restore per target cluster at a time: every restore holds the cluster's restore lease
(a Redis key every coordinator of the fleet shares) for as long as it runs. Two different restores
into one empty cluster would both pass the emptiness check and leave a mix of both; the second
is refused up front instead. A rerun of the same restore (same job) is the job lease's business.
"""
from __future__ import annotations

import redis

from br_common.fleet.jobs import Lease, owner_token

LEASE_TTL_MS = 30_000


def restore_lease(client: redis.Redis, cluster_id: int, job_id: str) -> Lease:
    return Lease(client, f"br:cluster:{cluster_id}:restore", LEASE_TTL_MS, token=f"{job_id} {owner_token()}")


def take(lease: Lease, cluster_id: int, job_id: str) -> str:
    """Take the cluster's restore lease (kept alive until released); "" when taken, else the one
    line refusing this restore. Called holding the job lease: a holder of the same job is an
    earlier run of it that died, whose lease this run takes over."""
    holder = None if lease.acquire() else (lease.holder() or "?")
    if holder is not None:
        other_job, _, coordinator = holder.partition(" ")
        if other_job != job_id:
            return (f"cluster {cluster_id} is being restored by another restore (job {other_job}, coordinator "
                    f"{coordinator or '?'}): one restore per cluster at a time; wait for it to end "
                    f"(`br fleet status` lists it)")
        lease.seize()
    lease.start_keepalive()
    return ""
