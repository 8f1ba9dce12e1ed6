"""GC safe points: service TTLs, refusal below the GC safe point, never backwards, persistence."""
from br_common.tso import compose
from br_devcluster.pd.gc import GCSafePoints


class FakeClock:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def __call__(self) -> float:
        return self.seconds


NOW = 1_700_000_000.0
LIFE = 600


def at(seconds: float) -> int:
    return compose(int(seconds * 1000), 0)


def make(tmp_path, clock):
    return GCSafePoints(tmp_path / "gc.json", LIFE, clock)


def test_without_services_gc_safe_point_trails_now_by_life_time(tmp_path):
    gc = make(tmp_path, FakeClock(NOW))
    assert gc.gc_safe_point() == at(NOW - LIFE)


def test_service_safe_point_holds_gc_back(tmp_path):
    clock = FakeClock(NOW)
    gc = make(tmp_path, clock)
    low = gc.update_service(b"br", 300, at(NOW - 2000))
    assert low.safe_point == at(NOW - 2000) and low.service_id == b"br" and low.ttl_seconds == 300
    assert gc.gc_safe_point() == at(NOW - 2000)


def test_min_over_live_services(tmp_path):
    gc = make(tmp_path, FakeClock(NOW))
    gc.update_service(b"a", 100, at(NOW - 50))
    assert gc.update_service(b"b", 100, at(NOW - 70)).safe_point == at(NOW - 70)
    assert gc.update_service(b"b", 100, at(NOW - 10)).safe_point == at(NOW - 50)  # upsert moved b up


def test_ttl_zero_or_negative_removes_the_service(tmp_path):
    gc = make(tmp_path, FakeClock(NOW))
    gc.update_service(b"a", 100, at(NOW - 5000))
    gc.update_service(b"b", 100, at(NOW - 4000))
    assert gc.update_service(b"a", 0, 0).safe_point == at(NOW - 4000)
    assert gc.update_service(b"b", -1, 0).safe_point == 0  # none left: the (never advanced) GC safe point


def test_expired_service_no_longer_holds_gc(tmp_path):
    clock = FakeClock(NOW)
    gc = make(tmp_path, clock)
    gc.update_service(b"br", 10, at(NOW - 5000))
    clock.seconds += 11
    assert gc.gc_safe_point() == at(NOW + 11 - LIFE)


def test_safe_point_below_gc_safe_point_is_refused(tmp_path):
    gc = make(tmp_path, FakeClock(NOW))
    current = gc.gc_safe_point()
    low = gc.update_service(b"late", 100, current - 1)
    assert low.safe_point == current and low.service_id == b""
    assert gc.update_service(b"ok", 100, current).safe_point == current


def test_gc_safe_point_never_moves_backwards(tmp_path):
    clock = FakeClock(NOW)
    gc = make(tmp_path, clock)
    before = gc.gc_safe_point()
    clock.seconds -= 3600  # clock jumps back
    assert gc.gc_safe_point() == before
    gc.update_service(b"x", 100_000, before)  # allowed: equal to the GC safe point
    clock.seconds = NOW + 3600
    assert gc.gc_safe_point() == before  # held by x, not dropped below


def test_state_survives_reload(tmp_path):
    clock = FakeClock(NOW)
    gc = make(tmp_path, clock)
    gc.update_service(b"\x00bin", 1000, at(NOW - 900))
    advanced = gc.gc_safe_point()
    reloaded = make(tmp_path, clock)
    assert reloaded.current() == advanced
    assert reloaded.update_service(b"other", 10, at(NOW)).service_id == b"\x00bin"


def test_update_gc_safe_point_moves_only_forward_and_persists(tmp_path):
    gc = make(tmp_path, FakeClock(NOW))
    ahead = at(NOW + 10)
    assert gc.update_gc_safe_point(ahead) == ahead
    assert gc.update_gc_safe_point(at(NOW)) == ahead  # lower: unchanged, as PD
    assert gc.gc_safe_point() == ahead  # PD's own advance (now - life time) does not pull it back
    assert make(tmp_path, FakeClock(NOW)).current() == ahead

