"""The checked-in modules in br_common/kvproto must be exactly what protos/ generates."""
from pathlib import Path

from br_common.kvproto.generate import PACKAGE_DIR, generate


def test_generated_modules_match_protos(tmp_path: Path) -> None:
    fresh = {path.name: path.read_text() for path in generate(tmp_path)}
    checked_in = {path.name: path.read_text() for path in PACKAGE_DIR.iterdir()
                  if path.name.endswith(("_pb2.py", "_pb2.pyi", "_pb2_grpc.py"))}
    assert sorted(fresh) == sorted(checked_in), "run: python -m br_common.kvproto.generate"
    stale = [name for name in fresh if fresh[name] != checked_in[name]]
    assert not stale, f"stale generated modules {stale}; run: python -m br_common.kvproto.generate"
