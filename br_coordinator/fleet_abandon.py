"""`br fleet abandon --job ID`: give up on an interrupted or failed job. Its record becomes
"abandoned" (agents then drop any of its tasks still queued, a rerun starts over instead of
resuming) and its PD service GC safe point is removed at once instead of at the end of
--checkpoint-gcttl. A job a coordinator is running is refused: stop that `br` first.
"""
from __future__ import annotations

import argparse

import redis

from br_common.fleet import redis_client
from br_common.fleet.broker import broker_problem
from br_common.fleet.jobs import RESUMABLE, JobStore, Lease
from br_common.pd_client import PDClient, PDError
from br_coordinator import flags
from br_coordinator.errors import CommandError
from br_coordinator.gc_keeper import remove_safe_point


def run_abandon(args: argparse.Namespace) -> int:
    broker = flags.resolve_broker(args)
    client = redis_client(broker)
    try:
        message = abandon(client, args)
    except redis.RedisError as exc:
        raise CommandError(broker_problem(broker, exc)) from None
    print(message)
    return 0


def abandon(client: redis.Redis, args: argparse.Namespace) -> str:
    jobs = JobStore(client, args.job)
    state = jobs.load()
    if state is None:
        raise CommandError(f"no job {args.job} in the broker (br fleet status lists the jobs)")
    if state.status not in RESUMABLE:
        raise CommandError(f"job {args.job} is {state.status}: nothing to abandon")
    holder = Lease(client, jobs.lease_key).holder()
    if holder:
        raise CommandError(f"job {args.job} is running (coordinator {holder}): stop that br first")
    try:
        with PDClient(args.pd, tls=flags.tls_config(args)) as pd:
            if pd.cluster_id != state.spec.cluster_id:
                raise CommandError(f"job {args.job} belongs to cluster {state.spec.cluster_id}, PD {args.pd} "
                                   f"serves cluster {pd.cluster_id}")
            remove_safe_point(pd, args.job)
    except PDError as exc:
        raise CommandError(str(exc)) from None
    jobs.abandon()
    return f"job {args.job} ({state.spec.kind} {state.spec.storage_url}) abandoned; its GC safe point is removed"
