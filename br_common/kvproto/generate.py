"""Regenerate the Python modules in this package from protos/*.proto.

The generated modules are checked in (so installs need no protoc) and
tests/unit/test_protos_fresh.py fails when they are stale.
Run: python -m br_common.kvproto.generate
"""
from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

PROTO_DIR = Path(__file__).resolve().parents[2] / "protos"
PACKAGE_DIR = Path(__file__).resolve().parent
_TOP_LEVEL_IMPORT = re.compile(r"^import (\w+_pb2) as (\w+)$", re.MULTILINE)


def generate(out_dir: Path) -> list[Path]:
    """Compile every proto into out_dir, with imports made package-relative."""
    protos = sorted(PROTO_DIR.glob("*.proto"))
    args = ["protoc", f"-I{PROTO_DIR}", f"--python_out={out_dir}", f"--pyi_out={out_dir}",
            f"--grpc_python_out={out_dir}", *map(str, protos)]
    if protoc.main(args) != 0:
        raise RuntimeError("protoc failed")
    written = sorted(p for p in out_dir.iterdir() if p.name.endswith(("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")))
    for path in written:
        text = _TOP_LEVEL_IMPORT.sub(r"from . import \1 as \2", path.read_text())
        path.write_text(text)
    return written


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        for path in generate(Path(tmp)):
            (PACKAGE_DIR / path.name).write_text(path.read_text())
    print(f"regenerated modules in {PACKAGE_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
