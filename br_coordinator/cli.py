"""`br`: the coordinator CLI's entry point. It only keeps storage keys out of the process's
command line (br_coordinator.hide_args re-executes `br` with the URL in a pipe) before anything
heavy is imported; the parsing and running of the verbs is br_coordinator.run.
"""
from __future__ import annotations

import sys

# only light imports here: a URL with keys must leave the command line before the interpreter
# spends time importing Celery, boto3 and friends
from br_coordinator.hide_args import hide_storage_secrets


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
        hide_storage_secrets(argv)  # re-execs itself when -s carries keys: they leave the cmdline
    from br_coordinator.run import run  # noqa: PLC0415 - after the re-exec: see the imports above

    return run(argv)


if __name__ == "__main__":
    sys.exit(main())
