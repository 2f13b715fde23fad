"""ORM query caching with dogpile.cache on faster-backend.

After SQLAlchemy's own ``examples/dogpile_caching``: a ``FromCache`` execution option and a
``do_orm_execute`` hook that serves whole ORM results from a dogpile region. The only
faster-backend-specific line is the region configuration.

    python docs/examples/sqlalchemy_query_cache.py [--url redis://127.0.0.1:6379/0]

Without ``--url`` the region uses an embedded store in a temporary data directory.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable
from typing import Any

from dogpile.cache import make_region
from dogpile.cache.api import NO_VALUE
from dogpile.cache.region import CacheRegion
from dogpile.cache.util import sha1_mangle_key
from sqlalchemy import ForeignKey, create_engine, event, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    ORMExecuteState,
    Session,
    loading,
    mapped_column,
    relationship,
    sessionmaker,
)
from sqlalchemy.orm.interfaces import UserDefinedOption
from sqlalchemy.sql.base import Executable


class FromCache(UserDefinedOption):
    """Load this statement's result from the named cache region."""

    propagate_to_loaders = False

    def __init__(self, region: str = "default", cache_key: str | None = None,
                 expiration_time: float | None = None) -> None:
        self.region = region
        self.cache_key = cache_key
        self.expiration_time = expiration_time

    def _gen_cache_key(self, anon_map: Any, bindparams: Any) -> None:
        return None  # SQLAlchemy's compiled-statement cache ignores this option

    def key_for(self, statement: Executable, parameters: Any, orm_cache: ORMCache) -> str:
        if self.cache_key is not None:
            return self.cache_key
        cache_key = statement._generate_cache_key()  # type: ignore[attr-defined]
        return str(cache_key.to_offline_string(orm_cache.statement_cache, statement,
                                               parameters))


class ORMCache:
    """Serves ``FromCache`` statements from dogpile regions (a ``do_orm_execute`` hook)."""

    def __init__(self, regions: dict[str, CacheRegion]) -> None:
        self.regions = regions
        self.statement_cache: dict[Any, Any] = {}

    def listen_on_session(self, factory: sessionmaker[Session]) -> None:
        event.listen(factory, "do_orm_execute", self._do_orm_execute)

    def _do_orm_execute(self, orm_context: ORMExecuteState) -> Any:
        for opt in orm_context.user_defined_options:
            if not isinstance(opt, FromCache):
                continue
            region = self.regions[opt.region]
            key = opt.key_for(orm_context.statement, orm_context.parameters or {}, self)

            def create() -> Any:
                return orm_context.invoke_statement().freeze()

            frozen = region.get_or_create(key, create, expiration_time=opt.expiration_time)
            if frozen is NO_VALUE:
                raise KeyError(key)
            merged = loading.merge_frozen_result(
                orm_context.session, orm_context.statement, frozen, load=False
            )
            return merged()
        return None

    def invalidate(self, statement: Executable, opt: FromCache,
                   parameters: Any = None) -> None:
        key = opt.key_for(statement, parameters or {}, self)
        self.regions[opt.region].delete(key)


class Base(DeclarativeBase):
    pass


class Person(Base):
    __tablename__ = "person"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str]
    addresses: Mapped[list[Address]] = relationship(back_populates="person", lazy="selectin")


class Address(Base):
    __tablename__ = "address"
    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id"))
    street: Mapped[str]
    person: Mapped[Person] = relationship(back_populates="addresses")


def make_regions(url: str | None, path: str | None) -> dict[str, CacheRegion]:
    arguments: dict[str, Any] = {"url": url} if url else {"path": path, "memory_size": "32MiB"}
    region = make_region(key_mangler=sha1_mangle_key).configure(
        "faster_backend", expiration_time=3600, arguments=arguments
    )
    return {"default": region}


def count_statements(engine: Engine) -> Callable[[], int]:
    counter = {"n": 0}

    @event.listens_for(engine, "before_cursor_execute")
    def _count(*args: Any) -> None:
        counter["n"] += 1

    return lambda: counter["n"]


def run(url: str | None, path: str) -> dict[str, Any]:
    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    factory = sessionmaker(engine)
    cache = ORMCache(make_regions(url, path))
    cache.listen_on_session(factory)
    statements = count_statements(engine)

    with factory.begin() as s:
        s.add_all([
            Person(name="ada", addresses=[Address(street="1 Loop Rd")]),
            Person(name="grace", addresses=[Address(street="2 Cobol St"),
                                            Address(street="3 Navy Way")]),
        ])

    query = select(Person).where(Person.name == "grace").options(FromCache("default"))
    opt = FromCache("default")
    cache.invalidate(query, opt)  # a rerun against a persistent store starts cold

    before = statements()
    with factory() as s:
        grace = s.scalars(query).one()
        first = (grace.name, sorted(a.street for a in grace.addresses))
    cold = statements() - before

    before = statements()
    with factory() as s:
        grace = s.scalars(query).one()
        second = (grace.name, sorted(a.street for a in grace.addresses))
    warm = statements() - before

    cache.invalidate(query, opt)
    before = statements()
    with factory() as s:
        s.scalars(query).one()
    after_invalidate = statements() - before
    engine.dispose()
    return {"first": first, "second": second, "cold_statements": cold,
            "warm_statements": warm, "statements_after_invalidate": after_invalidate}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="redis:// URL of a faster-backend server (or Redis)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as path:
        result = run(args.url, path)
    assert result["first"] == result["second"]
    assert result["warm_statements"] == 0, result
    assert result["cold_statements"] > 0 and result["statements_after_invalidate"] > 0
    print(f"loaded {result['first'][0]!r} with {result['cold_statements']} SQL statements,"
          f" then from the cache with {result['warm_statements']};"
          f" after invalidation {result['statements_after_invalidate']} again")


if __name__ == "__main__":
    main()
