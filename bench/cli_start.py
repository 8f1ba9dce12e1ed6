"""How long `br --help` and `br-agent --help` take, as an operator's shell runs them.

    python bench/cli_start.py [--runs 7]

Each command runs `--runs` times as its own process (the installed console scripts beside this
Python); prints the median and the fastest wall time, with `python -c pass` as the baseline
(the interpreter's own start-up on this machine). Target: `br --help` under 1 s.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def wall_times(argv: list[str], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - started)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    commands = {"python -c pass (baseline)": [sys.executable, "-c", "pass"],
                "br --help": [str(BIN / "br"), "--help"],
                "br backup full --help": [str(BIN / "br"), "backup", "full", "--help"],
                "br-agent --help": [str(BIN / "br-agent"), "--help"]}
    for name, argv in commands.items():
        times = wall_times(argv, args.runs)
        print(f"{name:<28} median {statistics.median(times):.2f} s, fastest {min(times):.2f} s "
              f"({args.runs} runs)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
