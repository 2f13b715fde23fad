"""Flask-Session adapter: a ``ServerSideSessionInterface`` over ``SqlTableStore``.

It reads and writes the table Flask-Session's SQLAlchemy interface uses (same columns, same
``session:`` key prefix, same msgspec encoding), so an app switches with one line::

    app.session_interface = FasterSqlSessionInterface.from_app_config(app)
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from flask import Flask
from flask_session.base import ServerSideSession, ServerSideSessionInterface
from flask_session.defaults import Defaults

from faster_backend.integrations.sqlalchemy.session_store import SqlTableStore

log = logging.getLogger(__name__)


def _database_url(config: Any) -> str | None:
    """The URL Flask-Session's table lives at: the session bind's, else the default one."""
    bind_key = config.get("SESSION_SQLALCHEMY_BIND_KEY")
    if bind_key:
        bind = (config.get("SQLALCHEMY_BINDS") or {}).get(bind_key)
        if bind is None:
            raise ValueError(f"SESSION_SQLALCHEMY_BIND_KEY={bind_key!r} is not in SQLALCHEMY_BINDS")
        return str(bind["url"] if isinstance(bind, dict) else bind)
    url = config.get("SQLALCHEMY_DATABASE_URI")
    return None if url is None else str(url)


class FasterSqlSession(ServerSideSession):  # type: ignore[misc]
    """A session whose storage is a ``SqlTableStore``."""


class FasterSqlSessionInterface(ServerSideSessionInterface):  # type: ignore[misc]
    """Flask-Session's SQLAlchemy interface, on a SQL table read through the hybrid log.

    Give a ``store``, or a database ``url`` (plus ``SqlTableStore`` options) to open one.
    """

    session_class = FasterSqlSession
    # Not a TTL database: Flask-Session then registers `flask session_cleanup` (or a 1-in-N
    # request cleanup), both routed to the store's batched deletion.
    ttl = False

    def __init__(
        self,
        app: Flask,
        store: SqlTableStore | None = None,
        *,
        url: str | None = None,
        table: str = Defaults.SESSION_SQLALCHEMY_TABLE,
        key_prefix: str = Defaults.SESSION_KEY_PREFIX,
        use_signer: bool = Defaults.SESSION_USE_SIGNER,
        permanent: bool = Defaults.SESSION_PERMANENT,
        sid_length: int = Defaults.SESSION_ID_LENGTH,
        serialization_format: str = Defaults.SESSION_SERIALIZATION_FORMAT,
        cleanup_n_requests: int | None = Defaults.SESSION_CLEANUP_N_REQUESTS,
        **store_options: Any,
    ) -> None:
        if store is None:
            if url is None:
                raise ValueError(
                    "FasterSqlSessionInterface needs a store or a database url"
                    " (e.g. app.config['SQLALCHEMY_DATABASE_URI'])"
                )
            store = SqlTableStore(url, table=table, **store_options)
        elif store_options or url is not None:
            raise ValueError("give either a store or url/store options, not both")
        self.store = store
        super().__init__(
            app, key_prefix, use_signer, permanent, sid_length, serialization_format,
            cleanup_n_requests,
        )

    @classmethod
    def from_app_config(
        cls, app: Flask, store: SqlTableStore | None = None, **overrides: Any
    ) -> FasterSqlSessionInterface:
        """Build from the ``SESSION_*`` / ``SQLALCHEMY_DATABASE_URI`` keys Flask-Session reads."""
        c = app.config
        kwargs: dict[str, Any] = {
            "key_prefix": c.get("SESSION_KEY_PREFIX", Defaults.SESSION_KEY_PREFIX),
            "use_signer": c.get("SESSION_USE_SIGNER", Defaults.SESSION_USE_SIGNER),
            "permanent": c.get("SESSION_PERMANENT", Defaults.SESSION_PERMANENT),
            "sid_length": c.get("SESSION_ID_LENGTH", Defaults.SESSION_ID_LENGTH),
            "serialization_format": c.get(
                "SESSION_SERIALIZATION_FORMAT", Defaults.SESSION_SERIALIZATION_FORMAT
            ),
            "cleanup_n_requests": c.get(
                "SESSION_CLEANUP_N_REQUESTS", Defaults.SESSION_CLEANUP_N_REQUESTS
            ),
        }
        if store is None:
            kwargs["url"] = _database_url(c)
            kwargs["table"] = c.get("SESSION_SQLALCHEMY_TABLE", Defaults.SESSION_SQLALCHEMY_TABLE)
            kwargs["schema"] = c.get("SESSION_SQLALCHEMY_SCHEMA")
            kwargs["sequence"] = c.get("SESSION_SQLALCHEMY_SEQUENCE")
        kwargs.update(overrides)
        return cls(app, store, **kwargs)

    def _retrieve_session_data(self, store_id: str) -> dict[str, Any] | None:
        data = self.store.get(store_id)
        if data is None:
            return None
        try:
            decoded: dict[str, Any] = self.serializer.decode(data)
        except Exception:
            # The row stays untouched; the client gets a fresh session id.
            log.warning("undecodable session data for %r; starting a new session", store_id,
                        exc_info=True)
            return None
        return decoded

    def _upsert_session(
        self, session_lifetime: timedelta, session: ServerSideSession, store_id: str
    ) -> None:
        self.store.set(store_id, self.serializer.encode(session), ttl=session_lifetime)

    def _delete_session(self, store_id: str) -> None:
        self.store.delete(store_id)

    def _delete_expired_sessions(self) -> None:
        self.store.delete_expired()
