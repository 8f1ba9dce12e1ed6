"""A backup on storage, in one place: its object names (layout), what it holds (kind) and its
backupmeta, built, read and checked (meta). Coordinator and agents agree through this package.

    from br_common.backupmeta import layout, kind, meta
    layout.BACKUPMETA, layout.LOCK, layout.attempt_object_name(...)
    kind.rules(kind.BackupKind.RAW).is_raw_kv
    meta.build(...), meta.parse(data, where)     # one rule set, used by agents and br alike

Adding a backup kind (transactional, incremental) means a new entry in kind.RULES and the meta
checks that go with it, not edits across the agents and the coordinator.
"""
