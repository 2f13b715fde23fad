from collections.abc import Callable, Mapping
from typing import Any

def index_read(
    index: bytearray,
    mask: int,
    h: int | None,
    pages: list[bytearray | None],
    head: int,
    bits: int,
    key: bytes,
    now: Callable[[], float],
) -> bytes | int | None: ...
def index_read_many(
    index: bytearray,
    mask: int,
    pages: list[bytearray | None],
    head: int,
    bits: int,
    begin: int,
    keys: list[bytes],
    now: Callable[[], float],
) -> tuple[list[bytes | int | bool | None], int, int]: ...
def chain_read(
    addr: int,
    pages: list[bytearray | None],
    head: int,
    bits: int,
    key: bytes,
    now: Callable[[], float],
) -> bytes | int | None: ...
def index_upsert(
    index: bytearray,
    mask: int,
    h: int | None,
    pages: list[bytearray | None],
    head: int,
    read_only: int,
    begin: int,
    tail: int,
    bits: int,
    key: bytes,
    value: bytes,
    expiry: int | None,
    info_bits: int,
    dirty: set[int],
    known_end: int,
) -> int: ...
def index_incr_many(
    index: bytearray,
    mask: int,
    pages: list[bytearray | None],
    head: int,
    read_only: int,
    bits: int,
    keys: list[bytes],
    start: int,
    delta: int,
    now: Callable[[], float],
    dirty: set[int],
    out: list[Any],
) -> int: ...
def index_incr(
    index: bytearray,
    mask: int,
    h: int | None,
    pages: list[bytearray | None],
    head: int,
    read_only: int,
    bits: int,
    key: bytes,
    delta: int,
    now: Callable[[], float],
    dirty: set[int],
) -> int | None: ...
def expired_entries(
    index: bytearray,
    mask: int,
    start: int,
    count: int,
    pages: list[bytearray | None],
    head: int,
    bits: int,
    now_ms: float,
) -> list[tuple[int, bytes]]: ...
def skip_empty(index: bytearray, mask: int, cursor: int, budget: int) -> tuple[int, int]: ...
def index_locate(
    index: bytearray,
    mask: int,
    h: int,
    pages: list[bytearray | None],
    head: int,
    bits: int,
    key: bytes,
) -> int: ...
def collect_bucket(
    index: bytearray,
    mask: int,
    bucket: int,
    pages: list[bytearray | None],
    head: int,
    bits: int,
    now_ms: float,
    hash: Callable[[bytes], int],
    out: list[bytes],
) -> list[tuple[int, set[bytes]]] | None: ...
def cached_read(
    entries: dict[int, tuple[bytes, int]],
    addr: int,
    key: bytes,
    floor: float,
    now: Callable[[], float],
) -> bytes | bool | None: ...
def record_value(rec: bytes, key: bytes, now: Callable[[], float]) -> bytes | bool | None: ...
def pread_value(
    segments: Mapping[int, Any],
    segment_size: int,
    addr: int,
    length: int,
    key: bytes,
    now: Callable[[], float],
) -> tuple[bytes | None, bytes] | bool: ...
def index_upsert_many(
    index: bytearray,
    mask: int,
    pages: list[bytearray | None],
    head: int,
    read_only: int,
    begin: int,
    tail: int,
    bits: int,
    items: list[tuple[bytes, bytes]],
    start: int,
    expiry: int | None,
    info_bits: int,
    dirty: set[int],
    hash: Callable[[bytes], int] | None,
) -> tuple[int, int, int, int, int]: ...
