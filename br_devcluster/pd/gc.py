"""GC safe points: per-service safe points with a TTL, and the cluster GC safe point.

A devcluster has no TiDB gc_worker, so PD itself advances the GC safe point when it is read:
to now - gc_life_time, held back by every live service safe point, and never backwards. A GC
worker that does run (TiDB's, a test) moves it with UpdateGCSafePoint, as on a real PD.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from br_common.tso import compose
from br_devcluster.pd import persist

MAX_TTL_SECONDS = 100 * 365 * 24 * 3600  # "forever" without float overflow in the state file


class ServiceSafePoint(BaseModel):
    model_config = ConfigDict(ser_json_bytes="base64", val_json_bytes="base64")

    service_id: bytes
    safe_point: int
    expires_at: float  # unix seconds


class GCState(BaseModel):
    gc_safe_point: int = 0
    services: dict[str, ServiceSafePoint] = Field(default_factory=dict)  # key: service_id.hex()


@dataclass(frozen=True)
class MinServiceSafePoint:
    """What UpdateServiceGCSafePoint answers: the minimum, and which service holds it."""
    service_id: bytes
    ttl_seconds: int
    safe_point: int


class GCSafePoints:
    """Thread-safe; every change is persisted before it is answered."""

    def __init__(self, path: Path, life_time_seconds: float, clock: Callable[[], float] = time.time) -> None:
        self._path = path
        self._life_time = life_time_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._state = persist.read(path, GCState) or GCState()

    def update_service(self, service_id: bytes, ttl_seconds: int, safe_point: int) -> MinServiceSafePoint:
        """Upsert (ttl > 0) or remove (ttl <= 0); a safe point below the GC safe point is refused."""
        with self._lock:
            now = self._clock()
            changed = self._prune(now)
            key = service_id.hex()
            if ttl_seconds <= 0:
                changed |= self._state.services.pop(key, None) is not None
            elif safe_point >= self._state.gc_safe_point:
                expires = now + min(ttl_seconds, MAX_TTL_SECONDS)
                self._state.services[key] = ServiceSafePoint(service_id=service_id, safe_point=safe_point,
                                                             expires_at=expires)
                changed = True
            if changed:
                self._save()
            return self._minimum(now)

    def gc_safe_point(self) -> int:
        """Advance (never back) to min(live service safe points, now - life time) and return it."""
        with self._lock:
            now = self._clock()
            changed = self._prune(now)
            by_life_time = compose(max(0, int((now - self._life_time) * 1000)), 0)
            candidate = min([s.safe_point for s in self._state.services.values()] + [by_life_time])
            if candidate > self._state.gc_safe_point:
                self._state.gc_safe_point = candidate
                changed = True
            if changed:
                self._save()
            return self._state.gc_safe_point

    def update_gc_safe_point(self, safe_point: int) -> int:
        """TiDB's GC worker moving the GC safe point: as PD, only forward (a lower value changes
        nothing), without checking service safe points (the GC worker held itself below them).
        Returns the GC safe point now."""
        with self._lock:
            if safe_point > self._state.gc_safe_point:
                self._state.gc_safe_point = safe_point
                self._save()
            return self._state.gc_safe_point

    def current(self) -> int:
        """The GC safe point as last advanced, without advancing it."""
        with self._lock:
            return self._state.gc_safe_point

    def _prune(self, now: float) -> bool:
        expired = [key for key, s in self._state.services.items() if s.expires_at <= now]
        for key in expired:
            del self._state.services[key]
        return bool(expired)

    def _minimum(self, now: float) -> MinServiceSafePoint:
        if not self._state.services:
            return MinServiceSafePoint(b"", 0, self._state.gc_safe_point)
        low = min(self._state.services.values(), key=lambda s: (s.safe_point, s.service_id))
        return MinServiceSafePoint(low.service_id, max(0, int(low.expires_at - now)), low.safe_point)

    def _save(self) -> None:
        persist.write_atomic(self._path, self._state)
