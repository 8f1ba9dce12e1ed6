"""`br fleet orphans -s URL [--remove]`: the data files under a backup that its backupmeta does not
list — uploads of attempts that were resent, interrupted or landed late (each attempt writes under
its own name, so none of them can change the backup). An agent lists them with its own credentials
and, with --remove, deletes them (its role then needs s3:DeleteObject); it reads backupmeta itself
and never deletes a file it lists. An unfinished backup's files are only listed: they are its own
until a rerun completes it, or it is given up (`br fleet abandon`, then delete the prefix).
"""
from __future__ import annotations

import argparse
from functools import partial

from br_common.fleet import messages as m
from br_common.fleet.app import make_app
from br_common.fleet.registry import Registry
from br_coordinator.follow.agents import check_agents
from br_coordinator.follow.storage_book import call_storage
from br_coordinator.job_runner import connections
from br_coordinator.progress import human_bytes


def run_orphans(args: argparse.Namespace) -> int:
    with connections(args) as conn:
        app = make_app(conn.settings.broker, conn.settings)
        registry = Registry(conn.redis)
        agents = registry.alive(conn.pd.cluster_id)
        check_agents(agents, conn.specs, app.signer, set(), conn.pd)
        task = m.OrphansTask(storage=conn.specs.for_agents(agents), remove=args.remove)
        result = partial(call_storage, app, conn.pd, registry)(m.ORPHANS, task, m.OrphansResult,
                                                               shadow=f"orphans {conn.specs.url}")
    print(_report(conn.specs.url, result, args.remove))
    return 0


def _report(url: str, result: m.OrphansResult, remove: bool) -> str:
    size = human_bytes(sum(o.size for o in result.orphans))
    lines = [f"  {o.name} ({human_bytes(o.size)})" for o in result.orphans]
    if not result.complete:
        head = (f"{url} holds an unfinished backup ({len(result.orphans)} files, {size}): rerun its `br backup` to "
                f"finish it, or give it up (`br fleet abandon`) and delete the prefix"
                + ("; nothing was removed" if remove else ""))
    elif remove:
        head = f"{url}: removed {result.removed} orphan files ({size}); the backup is unchanged"
    else:
        head = f"{url}: {len(result.orphans)} orphan files ({size}) that backupmeta does not list" + \
               (" (remove them with --remove)" if result.orphans else "")
    return "\n".join([head, *lines])
