"""``FaultyDevice``: wraps a device and injects I/O faults (for tests), deterministically."""

from __future__ import annotations

import errno
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from faster_backend.engine.devices.base import (
    Buffer,
    Callback,
    ReadCallback,
    StorageDevice,
    WriteCallback,
)
from faster_backend.engine.devices.errors import (
    DeviceClosedError,
    InjectedFaultError,
    ShortWriteError,
    TornWriteError,
)
from faster_backend.engine.devices.workers import WorkerPool

KINDS = ("eio", "enospc", "short_write", "torn_write", "delay")
_DEFAULT_OPS = {
    "eio": frozenset({"read", "write"}),
    "enospc": frozenset({"write"}),
    "short_write": frozenset({"write"}),
    "torn_write": frozenset({"write"}),
    "delay": frozenset({"read", "write"}),
}


@dataclass
class Fault:
    """One fault rule.

    ``ops`` is a subset of ``{"read", "write", "flush"}`` (default: what ``kind`` applies to);
    the rule fires with ``probability`` on matching operations that overlap ``address_range``
    (``[start, end)``, ``None`` for all), after skipping the first ``after`` matches, at most
    ``count`` times (``None``: no limit).
    """

    kind: str
    probability: float = 1.0
    count: int | None = None
    after: int = 0
    address_range: tuple[int, int] | None = None
    ops: frozenset[str] | None = None
    delay: float = 0.01
    fired: int = field(default=0, init=False)
    seen: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; expected one of {KINDS}")
        if self.ops is None:
            self.ops = _DEFAULT_OPS[self.kind]
        unknown = set(self.ops) - {"read", "write", "flush"}
        if unknown:
            raise ValueError(f"unknown operations {sorted(unknown)} in fault {self.kind!r}")
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError(f"probability must be in [0, 1], got {self.probability}")

    def matches(self, op: str, address: int, length: int) -> bool:
        assert self.ops is not None
        if op not in self.ops:
            return False
        if self.count is not None and self.fired >= self.count:
            return False
        if self.address_range is not None and op != "flush":
            start, end = self.address_range
            if address + max(length, 1) <= start or address >= end:
                return False
        return True


@dataclass(frozen=True)
class Injected:
    """A record of one fault that fired."""

    kind: str
    op: str
    address: int
    length: int
    written: int = 0


class FaultyDevice(StorageDevice):
    """Passes I/O to ``inner`` except where a ``Fault`` fires.

    Every fault reaches the caller as an ``InjectedFaultError`` (an ``OSError`` with ``errno``
    EIO or ENOSPC); short and torn writes first write part of the data, like a real device
    failing mid-request. Delays only slow the operation down. Same seed, same faults.
    """

    kind = "faulty"

    def __init__(
        self, inner: StorageDevice, faults: list[Fault] | None = None, seed: int = 0
    ) -> None:
        super().__init__(inner.directory, inner.name, inner.segment_size, inner.sector_size)
        self.inner = inner
        self.stats = inner.stats
        self.faults: list[Fault] = list(faults or [])
        self.injected: list[Injected] = []
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._pool = WorkerPool(2, "faulty-device")

    @property
    def begin_segment(self) -> int:  # type: ignore[override]
        return self.inner.begin_segment

    @begin_segment.setter
    def begin_segment(self, value: int) -> None:
        pass  # the inner device owns it

    def add_fault(self, fault: Fault) -> Fault:
        with self._lock:
            self.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self._lock:
            self.faults.clear()

    def _pick(self, op: str, address: int, length: int) -> tuple[Fault | None, float]:
        """The error fault that fires for this operation, and the total injected delay."""
        delay = 0.0
        chosen: Fault | None = None
        with self._lock:
            for fault in self.faults:
                if not fault.matches(op, address, length):
                    continue
                fault.seen += 1
                if fault.seen <= fault.after or self._rng.random() >= fault.probability:
                    continue
                if fault.kind == "delay":
                    fault.fired += 1
                    delay += fault.delay
                elif chosen is None:
                    fault.fired += 1
                    chosen = fault
            if chosen is not None:
                self.injected.append(Injected(chosen.kind, op, address, length))
        return chosen, delay

    def _where(self, address: int) -> tuple[str, str | None]:
        path, offset = self.inner.locate(address)
        name = str(path) if path is not None else None
        return f"address {address} ({name or 'no file'} offset {offset})", name

    def write(self, address: int, data: Buffer) -> None:
        self._check_open()
        view = memoryview(data).cast("B")
        fault, delay = self._pick("write", address, len(view))
        if delay:
            time.sleep(delay)
        if fault is None:
            self.inner.write(address, view)
            return
        where, name = self._where(address)
        if fault.kind == "eio":
            raise InjectedFaultError(errno.EIO, f"injected EIO writing {where}", name)
        if fault.kind == "enospc":
            raise InjectedFaultError(errno.ENOSPC, f"injected ENOSPC writing {where}", name)
        if fault.kind == "short_write":
            with self._lock:
                written = self._rng.randrange(0, max(1, len(view)))
            if written:
                self.inner.write(address, view[:written])
            raise ShortWriteError(
                errno.EIO,
                f"injected short write: {written} of {len(view)} bytes at {where}",
                name,
                written,
            )
        # torn_write: a random subset of the sectors reaches the device
        sector = self.sector_size
        cuts = list(range(0, len(view), sector))
        with self._lock:
            keep = [c for c in cuts if self._rng.random() < 0.5]
            if len(keep) == len(cuts) and cuts:
                keep.pop(self._rng.randrange(len(keep)))
        for start in keep:
            self.inner.write(address + start, view[start : start + sector])
        raise TornWriteError(
            errno.EIO,
            f"injected torn write: {len(keep)} of {len(cuts)} sectors of {len(view)} bytes"
            f" at {where}",
            name,
        )

    def read(self, address: int, length: int) -> bytes:
        self._check_open()
        fault, delay = self._pick("read", address, length)
        if delay:
            time.sleep(delay)
        if fault is not None:
            where, name = self._where(address)
            code = errno.ENOSPC if fault.kind == "enospc" else errno.EIO
            raise InjectedFaultError(code, f"injected {fault.kind} reading {where}", name)
        return self.inner.read(address, length)

    def write_async(self, address: int, data: Buffer, callback: WriteCallback) -> None:
        self._check_args(address, 0)

        def job() -> None:
            try:
                self.write(address, data)
            except BaseException as exc:
                callback(None, exc)
            else:
                callback(memoryview(data).nbytes, None)

        self._run_async(job)

    def _run_async(self, job: Callable[[], None]) -> None:
        try:
            self._pool.submit(job)
        except RuntimeError:
            raise DeviceClosedError(f"{self.describe()} is closed") from None

    def read_async(self, address: int, length: int, callback: ReadCallback) -> None:
        self._check_args(address, length)

        def job() -> None:
            try:
                result = self.read(address, length)
            except BaseException as exc:
                callback(None, exc)
            else:
                callback(result, None)

        self._run_async(job)

    def flush_async(self, callback: Callback[None]) -> None:
        self._check_open()

        def job() -> None:
            try:
                self.flush()
            except BaseException as exc:
                callback(None, exc)
            else:
                callback(None, None)

        self._run_async(job)

    def flush(self) -> None:
        self._check_open()
        fault, delay = self._pick("flush", 0, 0)
        if delay:
            time.sleep(delay)
        if fault is not None:
            code = errno.ENOSPC if fault.kind == "enospc" else errno.EIO
            raise InjectedFaultError(code, f"injected {fault.kind} in fsync of {self.describe()}")
        self.inner.flush()

    def truncate(self, below_address: int) -> int:
        self._check_open()
        return self.inner.truncate(below_address)

    def close(self) -> None:
        if self._closed:
            return
        self._pool.close()
        self._closed = True
        self.inner.close()
