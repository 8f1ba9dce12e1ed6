"""Python modules generated from protos/ (kvproto subset plus devclusterpb).

Regenerate with `python -m br_common.kvproto.generate`; a unit test fails when they are stale.
"""
