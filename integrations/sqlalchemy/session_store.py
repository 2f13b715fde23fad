"""``SqlTableStore``: a SQL session table as system of record, the hybrid log as its cache.

Writes (per key, under a per-key lock): invalidate the cached entry, upsert the row with one
native statement, then cache the new value with TTL = expiry - now. Reads hit the cache first
and on a miss read the row (under the same lock) and cache it. Why this order, and what it
guarantees after a crash, is in docs/sqlalchemy.md.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import (
    Column,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Sequence,
    String,
    Table,
    create_engine,
    delete,
    func,
    inspect,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from faster_backend.integrations.sqlalchemy._kv import KV, LocalKV, RemoteKV, open_local

log = logging.getLogger(__name__)

#: The in-memory store every ``SqlTableStore`` of a process shares unless told otherwise, so
#: two stores on one table in one process invalidate each other's entries.
SHARED_CACHE_NAME = "faster_backend.sessions"

UpsertMode = Literal["auto", "generic"]


def utcnow() -> datetime:
    """Naive UTC, as Flask-Session writes its ``expiry`` column."""
    return datetime.now(UTC).replace(tzinfo=None)


def session_table(
    metadata: MetaData, name: str = "sessions", schema: str | None = None,
    sequence: str | None = None,
) -> Table:
    """Flask-Session's SQLAlchemy table: ``id``, ``session_id`` (unique), ``data``, ``expiry``."""
    id_col = (
        Column("id", Integer, Sequence(sequence), primary_key=True)
        if sequence
        else Column("id", Integer, primary_key=True)
    )
    return Table(
        name,
        metadata,
        id_col,
        Column("session_id", String(255), unique=True),
        Column("data", LargeBinary),
        Column("expiry", DateTime),
        schema=schema,
    )


def _seconds(ttl: float | timedelta) -> float:
    return ttl.total_seconds() if isinstance(ttl, timedelta) else float(ttl)


class SqlTableStore:
    """Session rows in a SQL table, read through an embedded (or served) FASTER cache.

    ``engine``: an Engine or a database URL (then the store owns and disposes the Engine).
    The cache is the process-wide in-memory store by default; ``cache_path`` puts it in a
    data directory, ``cache_url`` on a ``faster-backend serve`` server shared by every process
    (needed for coherence when several processes write the same table). ``cache_ttl`` caps
    how long an entry is served without looking at the table. ``cleanup_interval`` seconds
    between background batched deletions of expired rows (None: no thread).
    """

    def __init__(
        self,
        engine: Engine | str,
        *,
        table: str = "sessions",
        schema: str | None = None,
        sequence: str | None = None,
        create: bool = True,
        cache_url: str | None = None,
        cache_path: str | os.PathLike[str] | None = None,
        cache_memory_size: int | str | None = None,
        cache_ttl: float | None = None,
        cleanup_interval: float | None = 300.0,
        cleanup_batch: int = 1000,
        upsert: UpsertMode = "auto",
    ) -> None:
        if cleanup_batch < 1:
            raise ValueError(f"cleanup_batch must be >= 1, got {cleanup_batch}")
        if cache_ttl is not None and cache_ttl <= 0:
            raise ValueError(f"cache_ttl must be positive seconds or None, got {cache_ttl}")
        if cache_url is not None and cache_path is not None:
            raise ValueError("give cache_url or cache_path, not both")
        if cleanup_interval is not None and cleanup_interval <= 0:
            raise ValueError(f"cleanup_interval must be positive or None, got {cleanup_interval}")
        if upsert not in ("auto", "generic"):
            raise ValueError(f"upsert must be 'auto' or 'generic', got {upsert!r}")
        self._owns_engine = isinstance(engine, str)
        self.engine: Engine = create_engine(engine) if isinstance(engine, str) else engine
        self.table = session_table(MetaData(), table, schema, sequence)
        self.cache_ttl = cache_ttl
        self.cleanup_batch = cleanup_batch
        self.cache: KV
        if cache_url is not None:
            self.cache = RemoteKV(cache_url)
        else:
            self.cache = open_local(cache_path, cache_memory_size, name=SHARED_CACHE_NAME)
        qualified = f"{schema}.{table}" if schema else table
        # Keys name the database and table (stores on different databases share one cache
        # store) and,
        # for an embedded cache, a generation that is random per process life: entries a
        # persisted cache kept from before a restart are never looked up.
        where = self.engine.url.render_as_string(hide_password=True) + "/" + qualified
        digest = hashlib.blake2b(where.encode(), digest_size=8).hexdigest().encode()
        self._prefix = b"sts:" + self.cache.generation + b":" + digest + b":"
        self._closed = False
        self._stop = threading.Event()
        self._cleaner: threading.Thread | None = None
        self._upsert_mode = self._pick_upsert(upsert)
        if create:
            try:
                self._ensure_schema()
            except BaseException:
                self.close()
                raise
        if cleanup_interval is not None:
            self._cleaner = threading.Thread(
                target=self._clean_loop, args=(cleanup_interval,),
                name=f"faster-backend-cleanup-{qualified}", daemon=True,
            )
            self._cleaner.start()

    # -- schema -------------------------------------------------------------------------

    def _ensure_schema(self) -> None:
        self.table.create(self.engine, checkfirst=True)
        if not self.has_expiry_index():
            self.create_expiry_index()
        t = self.table
        insp = inspect(self.engine)
        uniques: list[list[str | None]] = [
            list(u["column_names"]) for u in insp.get_unique_constraints(t.name, t.schema)
        ]
        uniques += [
            list(ix["column_names"]) for ix in insp.get_indexes(t.name, t.schema)
            if ix.get("unique")
        ]
        if ["session_id"] not in uniques:
            raise ValueError(
                f"table {t.name} has no UNIQUE constraint on session_id; upserts need one:"
                f" CREATE UNIQUE INDEX uq_{t.name}_session_id ON {t.name} (session_id)"
            )

    def table_exists(self) -> bool:
        return inspect(self.engine).has_table(self.table.name, schema=self.table.schema)

    def has_expiry_index(self) -> bool:
        """Whether the table has an index on exactly ``(expiry)``."""
        indexes = inspect(self.engine).get_indexes(self.table.name, schema=self.table.schema)
        return any(list(ix["column_names"]) == ["expiry"] for ix in indexes)

    def create_expiry_index(self) -> None:
        """Add ``ix_<table>_expiry`` (Flask-Session's table has none; cleanup needs it)."""
        t = self.table
        Index(f"ix_{t.name}_expiry", t.c.expiry).create(self.engine)
        log.info("created index ix_%s_expiry on %s(expiry)", t.name, t.name)

    def _pick_upsert(self, mode: UpsertMode) -> str:
        if mode == "generic":
            return "generic"
        name = self.engine.dialect.name
        if name in ("sqlite", "postgresql"):
            return "on_conflict"
        if name in ("mysql", "mariadb"):
            return "on_duplicate"
        return "generic"

    # -- cache keys and locks -----------------------------------------------------------

    def _key(self, session_id: str) -> bytes:
        return self._prefix + session_id.encode()

    @contextmanager
    def _locked(self, key: bytes) -> Iterator[None]:
        mutex = self.cache.mutex(key)
        mutex.acquire(True)
        try:
            yield
        finally:
            mutex.release()

    def _cache_ttl(self, expiry: datetime, now: datetime) -> float:
        ttl = (expiry - now).total_seconds()
        return ttl if self.cache_ttl is None else min(ttl, self.cache_ttl)

    # -- operations ---------------------------------------------------------------------

    def get(self, session_id: str) -> bytes | None:
        """The data of a live session, or None (absent or expired)."""
        key = self._key(session_id)
        value = self.cache.get(key)
        if value is not None:
            return value
        with self._locked(key):
            value = self.cache.get(key)  # filled while we waited
            if value is not None:
                return value
            row = self._select(session_id)
            if row is None:
                return None
            data, expiry = row
            now = utcnow()
            if expiry is None or expiry <= now:
                self._delete_row_if_expired(session_id, now)
                return None
            self.cache.set(key, data, self._cache_ttl(expiry, now))
            return data

    @property
    def cache_is_local(self) -> bool:
        """True when cache lookups never touch the network (safe on an event loop)."""
        return isinstance(self.cache, LocalKV)

    def get_cached(self, session_id: str) -> bytes | None:
        """The cached data of a session, without consulting the table (None: not cached)."""
        return self.cache.get(self._key(session_id))

    def expiry(self, session_id: str) -> datetime | None:
        """The naive-UTC expiry of a live session (read from the table), or None."""
        row = self._select(session_id)
        if row is None or row[1] is None or row[1] <= utcnow():
            return None
        return row[1]

    def set(self, session_id: str, data: bytes, ttl: float | timedelta) -> None:
        """Write a session living ``ttl`` seconds; ``ttl <= 0`` deletes it."""
        seconds = _seconds(ttl)
        if seconds <= 0:
            self.delete(session_id)
            return
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(f"session data must be bytes, got {type(data).__name__}")
        data = bytes(data)
        now = utcnow()
        expiry = now + timedelta(seconds=seconds)
        key = self._key(session_id)
        with self._locked(key):
            # Invalidate first: if we die after the row write, the next read goes to the table.
            self.cache.delete(key)
            self._upsert_row(session_id, data, expiry)
            self.cache.set(key, data, self._cache_ttl(expiry, now))

    def delete(self, session_id: str) -> bool:
        """Delete a session; True if a row was deleted."""
        key = self._key(session_id)
        with self._locked(key):
            self.cache.delete(key)
            with self.engine.begin() as conn:
                n = conn.execute(
                    delete(self.table).where(self.table.c.session_id == session_id)
                ).rowcount
        return bool(n)

    def exists(self, session_id: str) -> bool:
        return self.get(session_id) is not None

    def delete_prefix(self, prefix: str, batch: int | None = None) -> int:
        """Delete every session whose id starts with ``prefix``; returns rows deleted."""
        t = self.table
        size = batch or self.cleanup_batch
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        total = 0
        while True:
            with self.engine.connect() as conn:
                ids = list(conn.execute(
                    select(t.c.session_id).where(t.c.session_id.like(escaped + "%", escape="\\"))
                    .limit(size)
                ).scalars())
            if not ids:
                return total
            for sid in ids:
                total += self.delete(sid)

    # -- expired rows -------------------------------------------------------------------

    def _expired(self, now: datetime) -> Any:
        return or_(self.table.c.expiry <= now, self.table.c.expiry.is_(None))

    def count_expired(self) -> int:
        with self.engine.connect() as conn:
            n = conn.execute(
                select(func.count()).select_from(self.table).where(self._expired(utcnow()))
            ).scalar_one()
        return int(n)

    def iter_delete_expired(self, batch: int | None = None) -> Iterator[int]:
        """Delete expired rows (and rows without an expiry) in batches, yielding each count.

        Each batch is its own short transaction, so a huge backlog never holds long locks.
        """
        t = self.table
        size = batch or self.cleanup_batch
        if size < 1:
            raise ValueError(f"batch must be >= 1, got {size}")
        while True:
            now = utcnow()
            with self.engine.begin() as conn:
                ids = list(conn.execute(
                    select(t.c.id).where(self._expired(now)).limit(size)
                ).scalars())
                if not ids:
                    return
                # Re-check expiry: a row refreshed since the SELECT must survive.
                n = conn.execute(
                    delete(t).where(t.c.id.in_(ids), self._expired(now))
                ).rowcount
            yield int(n)
            if len(ids) < size:
                return

    def delete_expired(self, batch: int | None = None) -> int:
        """Delete every expired row now; returns how many."""
        return sum(self.iter_delete_expired(batch))

    def _clean_loop(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                n = self.delete_expired()
                if n:
                    log.info("deleted %d expired sessions from %s", n, self.table.name)
            except Exception:
                log.exception("background cleanup of %s failed", self.table.name)

    # -- SQL ----------------------------------------------------------------------------

    def _select(self, session_id: str) -> tuple[bytes, datetime | None] | None:
        t = self.table
        with self.engine.connect() as conn:
            row = conn.execute(
                select(t.c.data, t.c.expiry).where(t.c.session_id == session_id)
            ).first()
        if row is None:
            return None
        return bytes(row[0] or b""), row[1]

    def _delete_row_if_expired(self, session_id: str, now: datetime) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                delete(self.table).where(
                    self.table.c.session_id == session_id, self._expired(now)
                )
            )

    def _upsert_row(self, session_id: str, data: bytes, expiry: datetime) -> None:
        values = {"session_id": session_id, "data": data, "expiry": expiry}
        if self._upsert_mode == "generic":
            self._generic_upsert(values)
            return
        with self.engine.begin() as conn:
            conn.execute(self._native_upsert(values))

    def _native_upsert(self, values: dict[str, Any]) -> Any:
        t = self.table
        if self._upsert_mode == "on_duplicate":
            from sqlalchemy.dialects.mysql import insert as mysql_insert

            m = mysql_insert(t).values(**values)
            return m.on_duplicate_key_update(data=m.inserted.data, expiry=m.inserted.expiry)
        if self.engine.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            p = pg_insert(t).values(**values)
            return p.on_conflict_do_update(
                index_elements=[t.c.session_id],
                set_={"data": p.excluded.data, "expiry": p.excluded.expiry},
            )
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        s = sqlite_insert(t).values(**values)
        return s.on_conflict_do_update(
            index_elements=[t.c.session_id],
            set_={"data": s.excluded.data, "expiry": s.excluded.expiry},
        )

    def _generic_upsert(self, values: dict[str, Any], attempts: int = 8) -> None:
        """UPDATE, else INSERT; a concurrent INSERT's IntegrityError means: UPDATE again."""
        t = self.table
        for _ in range(attempts):
            with self.engine.begin() as conn:
                if self._update(conn, values):
                    return
            try:
                with self.engine.begin() as conn:
                    conn.execute(t.insert().values(**values))
                return
            except IntegrityError:
                log.debug("concurrent insert of %r; updating instead", values["session_id"])
        raise RuntimeError(f"could not upsert session {values['session_id']!r} after"
                           f" {attempts} attempts (rows keep appearing and disappearing)")

    def _update(self, conn: Connection, values: dict[str, Any]) -> bool:
        t = self.table
        n = conn.execute(
            update(t).where(t.c.session_id == values["session_id"])
            .values(data=values["data"], expiry=values["expiry"])
        ).rowcount
        return bool(n)

    # -- lifecycle ----------------------------------------------------------------------

    def close(self) -> None:
        """Stop the cleanup thread; dispose the Engine if the store created it."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        if self._cleaner is not None:
            self._cleaner.join(timeout=30)
        if isinstance(self.cache, RemoteKV):
            self.cache.close()
        if self._owns_engine:
            self.engine.dispose()

    def __enter__(self) -> SqlTableStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
