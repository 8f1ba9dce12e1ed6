"""The devcluster store: one process per store, MVCC data of its region peers in one RocksDB.

Run with `python -m br_devcluster.store`; see docs/ARCHITECTURE.md ("Devcluster model").
"""
