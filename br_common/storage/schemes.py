"""Storage backends by URL scheme, in one table (kombu's transport aliases are the pattern: the
backend class is named as "module:Class" and imported only when a storage of it is opened, so
parsing an S3 URL does not load boto3).

    location = parse_storage_url("s3://bucket/prefix?endpoint=...")   # ValueError: one line
    location = location_from_pb(backend)                              # backup.StorageBackend
    storage = open_storage(location, options)

A new backend: its location model (kind, to_pb, clean_url, covers, ... as S3Location has) in
url.py's Location union, its ExternalStorage class, and one Scheme row here.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from br_common.kvproto import brpb_pb2
from br_common.storage import url
from br_common.storage.url import Location, S3Flags


@dataclass(frozen=True)
class Scheme:
    names: tuple[str, ...]  # URL schemes; the first is the location's kind and StorageBackend's field
    parse: Callable[[str, S3Flags | None], Location]
    from_pb: Callable[[brpb_pb2.StorageBackend], Location]
    storage_class: str  # "module:Class", an ExternalStorage with open(location, options)

    @property
    def kind(self) -> str:
        return self.names[0]

    def storage(self) -> type:
        module, _, name = self.storage_class.partition(":")
        return getattr(importlib.import_module(module), name)


SCHEMES: tuple[Scheme, ...] = (
    Scheme(("s3",), url.parse_s3_url, url.s3_from_pb, "br_common.storage.s3:S3Storage"),
    Scheme(("local", "file"), url.parse_local_url, url.local_from_pb, "br_common.storage.local:LocalStorage"),
)
_BY_NAME = {name: scheme for scheme in SCHEMES for name in scheme.names}
_USAGE = "use " + " or ".join(f"{s.kind}://" for s in SCHEMES)


def scheme_of(location: Location) -> Scheme:
    return _BY_NAME[location.kind]


def parse_storage_url(text: str, flags: S3Flags | None = None) -> Location:
    """Parse a storage URL, merging `--s3.*` flags (URL parameters win). ValueError on bad input."""
    text = text.strip()
    if not text:
        raise ValueError("the storage URL is empty: use s3://bucket/prefix or local:///absolute/path")
    if text.startswith("/"):
        return url.local_path(text, flags)
    name, sep, _ = text.partition("://")
    if not sep:
        raise ValueError("the storage must be s3://bucket/prefix, local:///absolute/path or an absolute path")
    scheme = _BY_NAME.get(name.lower())
    if scheme is None:
        raise ValueError(f"unsupported storage scheme {name.lower()!r}: {_USAGE}")
    return scheme.parse(text, flags)


def location_from_pb(backend: brpb_pb2.StorageBackend) -> Location:
    """The inverse of Location.to_pb (credentials included when the message carries them)."""
    which = backend.WhichOneof("backend")
    scheme = _BY_NAME.get(which or "")
    if scheme is None or scheme.kind != which:
        raise ValueError(f"unsupported storage backend {which or 'unset'!r}: "
                         + " or ".join(s.kind for s in SCHEMES))
    return scheme.from_pb(backend)
