"""SQLAlchemy-side integrations: a dogpile.cache backend and a SQL-table session store."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from faster_backend.integrations.sqlalchemy.session_store import SqlTableStore

__all__ = ["SqlTableStore"]


def __getattr__(name: str) -> Any:
    # Lazy, so loading the dogpile backend does not import SQLAlchemy.
    if name == "SqlTableStore":
        from faster_backend.integrations.sqlalchemy.session_store import SqlTableStore

        return SqlTableStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
