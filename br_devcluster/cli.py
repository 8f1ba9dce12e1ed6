"""Command-line entry point (work in progress)."""
import sys


def main() -> int:
    print("not implemented yet", file=sys.stderr)
    return 2
