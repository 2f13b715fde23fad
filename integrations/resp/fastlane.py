"""The fast lane: runs of plain GET and SET requests, cut out of a received chunk in C.

A pipelined cache client sends long runs of ``GET key`` or ``SET key value``. ``_frames.c``
reads such a run straight from the bytes received (only whole, well-formed frames, with short
arguments), the store answers the whole run with one ``read_many`` / ``upsert_many`` call, and
the GET replies are encoded in one buffer. The replies and side effects are those of the general
path, which handles everything else: the lane stops before the first request that is not part of
such a run, and the connection's general parser reads on from there. A run the store fails on
is left to the general path as well, which answers each request on its own (reads have no
effect, and a run of SETs gives the same result when it runs again).

The lane is off without the compiled module or with ``FASTER_BACKEND_PURE_PYTHON=1``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

from faster_backend.integrations.resp.client import Client
from faster_backend.integrations.resp.commands import strings
from faster_backend.integrations.resp.dispatch import error_reply
from faster_backend.integrations.resp.encoder import encode
from faster_backend.integrations.resp.table import COMMANDS

log = logging.getLogger(__name__)

MAX_ARG = 64 * 1024
"""Longer keys and values take the general path (its limits and errors apply to them)."""

_GET = COMMANDS[b"get"]
_SET = COMMANDS[b"set"]
_NIL = (b"$-1\r\n", b"_\r\n")

scan_run: Callable[[bytes, int, int], tuple[int, int, list[Any]]] | None = None
bulk_replies: Callable[[list[bytes | None], bytes], bytes] | None = None
if os.environ.get("FASTER_BACKEND_PURE_PYTHON", "") in ("", "0"):
    try:
        from faster_backend.integrations.resp import _frames
    except ImportError:  # not built (no C compiler at install time)
        log.warning("faster_backend.integrations.resp._frames is not built: no fast lane")
    else:
        scan_run = _frames.scan_run
        bulk_replies = _frames.bulk_replies


def run(client: Client, data: bytes, out: list[bytes]) -> tuple[int, int]:
    """Answer the runs of plain GET / SET at the start of ``data`` into ``out``: (bytes
    consumed, requests answered). The caller checked that the lane applies (a compiled module,
    a plain authenticated connection outside MULTI and pub/sub, the parser between frames)."""
    assert scan_run is not None
    pos = 0
    done = 0
    while True:
        end, code, items = scan_run(data, pos, MAX_ARG)
        if not code:
            return pos, done
        try:
            if code == 1:
                out.append(_gets(client, items))
                _GET.calls += len(items)
            else:
                _sets(client, items)
                out.append(b"+OK\r\n" * len(items))
                _SET.calls += len(items)
        except Exception:  # the general path answers each request of the run, errors included
            log.debug("fast lane: a run goes to the general path", exc_info=True)
            return pos, done
        done += len(items)
        pos = end
        client.last_cmd = b"get" if code == 1 else b"set"


def _gets(client: Client, keys: list[bytes]) -> bytes:
    values = client.kv.read_many(keys)
    nil = _NIL[client.proto == 3]
    objects = client.keyspace.objects
    if objects and None in values and not objects.keys().isdisjoint(keys):
        # A key holding a list, hash...: GET's own answer (WRONGTYPE) for those.
        parts = []
        for key, value in zip(keys, values, strict=True):
            if value is None and key in objects:
                try:
                    value = strings.get(client, [b"GET", key])
                except Exception as e:
                    parts.append(encode(error_reply(_GET, e), client.proto))
                    continue
            parts.append(encode(value, client.proto))
        return b"".join(parts)
    assert bulk_replies is not None
    return bulk_replies(values, nil)


def _sets(client: Client, items: list[tuple[bytes, bytes]]) -> None:
    keyspace = client.keyspace
    objects = keyspace.objects
    if objects:
        for key, _ in items:
            if key in objects:
                objects.delete(key)  # SET replaces a list, hash...
    client.kv.upsert_many(items)
    if keyspace.watchers:
        for key, _ in items:
            keyspace.touch(key)
