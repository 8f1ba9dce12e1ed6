"""`br fleet`'s command line: status, abandon and orphans, flags only. Each command's module
(fleet_status, fleet_abandon, fleet_orphans) loads when it runs, so `br --help` stays fast."""
from __future__ import annotations

import argparse

from br_coordinator import flags

QUIET = {"log_level": "warn"}


def register(subparsers: argparse._SubParsersAction) -> None:
    fleet = subparsers.add_parser("fleet", help="inspect the br-agent fleet",
                                  description="inspect the br-agent fleet (agents, queues, jobs)")
    commands = fleet.add_subparsers(dest="fleet_command", metavar="<command>", title="Available Commands")
    commands.required = True
    _status(commands)
    _abandon(commands)
    _orphans(commands)


def _status(commands: argparse._SubParsersAction) -> None:
    status = commands.add_parser(
        "status", parents=[flags.connection_parser()], help="each store, its agent, its queue, and the jobs",
        description="each store of PD with its agent (online, version, host/pid, last heartbeat, queue depth, "
                    "allowed storage destinations, metrics URL), the shared queue, and the jobs running or "
                    "interrupted (an interrupted job resumes when its command is rerun)",
        epilog="exit status: 0 every store has an online agent; 3 a store has none; 1 Redis or PD unreachable. "
               'Example: br fleet status --pd "${PDIP}:2379"')
    status.set_defaults(func=flags.run_later("br_coordinator.fleet_status", "run_status"), verb_defaults=QUIET)


def _abandon(commands: argparse._SubParsersAction) -> None:
    abandon = commands.add_parser(
        "abandon", parents=[flags.connection_parser()], help="give up on an interrupted or failed job",
        description="mark an interrupted or failed job abandoned and remove its GC safe point now (a "
                    "rerun of its command then starts over); `br fleet status` lists the job ids")
    abandon.add_argument("--job", required=True, metavar="ID", help="the job id (as br fleet status shows it)")
    abandon.set_defaults(func=flags.run_later("br_coordinator.fleet_abandon", "run_abandon"), verb_defaults=QUIET)


def _orphans(commands: argparse._SubParsersAction) -> None:
    orphans = commands.add_parser(
        "orphans", parents=[flags.common_parser()], help="list (or remove) files a backup does not use",
        description="list the data files under a backup that its backupmeta does not list (uploads of resent, "
                    "interrupted or late attempts); --remove deletes them from a complete backup (the agent's role "
                    "needs s3:DeleteObject); files backupmeta lists are never touched")
    orphans.add_argument("--remove", action="store_true", help="delete the orphans (complete backups only)")
    orphans.set_defaults(func=flags.run_later("br_coordinator.fleet_orphans", "run_orphans"), verb_defaults=QUIET)
