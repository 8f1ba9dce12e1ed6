from br_common.checksum import Checksum, crc64_xz
from br_common import tso


def test_crc64_xz_check_value() -> None:
    assert crc64_xz(b"hello world!") == 0x8483C0FA32607D61
    assert crc64_xz(b"123456789") == 0x995DC9BBDF1939FA  # CRC-64/XZ catalogue check value


def test_checksum_is_order_independent_and_mergeable() -> None:
    pairs = [(b"a", b"1"), (b"bb", b"22"), (b"c", b"")]
    whole = Checksum().add_pairs(pairs)
    reverse = Checksum().add_pairs(reversed(pairs))
    split = Checksum().add_pairs(pairs[:1]).merge(Checksum().add_pairs(pairs[1:]))
    assert whole == reverse == split
    assert whole.total_kvs == 3 and whole.total_bytes == 1 + 1 + 2 + 2 + 1


def test_tso_compose_roundtrip() -> None:
    ts = tso.compose(1_700_000_000_000, 5)
    assert tso.physical_ms(ts) == 1_700_000_000_000 and tso.logical(ts) == 5
