"""The fast lane: runs of plain GET, SET, INCR and MSET requests, cut out of a chunk in C.

A pipelined cache client sends long runs of ``GET key`` or ``SET key value``. ``_frames.c``
reads such a run straight from the bytes received (only whole, well-formed frames, with short
arguments), the store answers a run of GETs with one ``read_many`` and a run of SETs or MSETs
with one ``upsert_many``, and GET replies are encoded in one buffer. The replies and side effects
are those of the general path, which handles everything else: the lane stops before the first
request that is not part of such a run, and the connection's general parser reads on from there.
A GET or SET run the store fails on is left to the general path as well, which answers each
request on its own (reads have no effect, and a run of SETs gives the same result when it runs
again); INCRs run one by one, each with its own reply or error.

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
from faster_backend.integrations.resp.encoder import INT_REPLIES, encode
from faster_backend.integrations.resp.table import COMMANDS

log = logging.getLogger(__name__)

MAX_ARG = 64 * 1024
"""Longer keys and values take the general path (its limits and errors apply to them)."""

_GET = COMMANDS[b"get"]
_SET = COMMANDS[b"set"]
_INCR = COMMANDS[b"incr"]
_MSET = COMMANDS[b"mset"]
_NIL = (b"$-1\r\n", b"_\r\n")
_INTS = INT_REPLIES

scan_run: Callable[[bytes, int, int], tuple[int, int, int, list[Any]]] | None = None
bulk_replies: Callable[[list[bytes | None], bytes], bytes] | None = None
if os.environ.get("FASTER_BACKEND_PURE_PYTHON", "") in ("", "0"):
    try:
        from faster_backend.integrations.resp import _frames
    except ImportError:  # not built (no C compiler at install time)
        log.warning("faster_backend.integrations.resp._frames is not built: no fast lane")
    else:
        scan_run = _frames.scan_run
        bulk_replies = _frames.bulk_replies


def run(client: Client, data: bytes, out: list[bytes], max_bulk_len: int) -> tuple[int, int]:
    """Answer the runs of plain requests at the start of ``data`` into ``out``: (bytes
    consumed, requests answered). The caller checked that the lane applies (a compiled module,
    a plain authenticated connection outside MULTI and pub/sub, the parser between frames).
    Longer arguments than ``max_bulk_len`` (proto-max-bulk-len) are the parser's to refuse."""
    assert scan_run is not None
    limit = min(MAX_ARG, max_bulk_len)
    pos = 0
    done = 0
    while True:
        end, code, requests, items = scan_run(data, pos, limit)
        if code == 1:
            try:
                out.append(_gets(client, items))
            except Exception:  # the general path answers each GET, errors included
                log.debug("fast lane: GETs go to the general path", exc_info=True)
                return pos, done
            _GET.calls += requests
            client.last_cmd = b"get"
        elif code == 2 or code == 4:
            try:
                _sets(client, items)
            except Exception:  # the general path runs each SET again, errors included
                log.debug("fast lane: SETs go to the general path", exc_info=True)
                return pos, done
            out.append(b"+OK\r\n" * requests)
            spec = _SET if code == 2 else _MSET
            spec.calls += requests
            client.last_cmd = spec.name.encode()
        elif code == 3:
            out.append(_incrs(client, items))
            client.last_cmd = b"incr"
        else:
            return pos, done
        done += requests
        pos = end


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


def _incrs(client: Client, keys: list[bytes]) -> bytes:
    keyspace = client.keyspace
    objects = keyspace.objects
    if objects and not objects.keys().isdisjoint(keys):
        results: list[Any] = []
        for key in keys:  # INCR of a list, hash...: WRONGTYPE; one by one, in order
            try:
                results.append(strings.incr_by(client, key, 1))
            except Exception as e:
                results.append(e)
    else:
        results = client.kv.incr_many(keys)
    _INCR.calls += len(keys)
    parts = []
    watched = keyspace.watchers
    for key, n in zip(keys, results, strict=True):
        if n.__class__ is not int:
            parts.append(encode(error_reply(_INCR, strings.incr_error(n)), client.proto))
            continue
        parts.append(_INTS[n + 1] if -1 <= n < 1023 else b":%d\r\n" % n)
        if watched:
            keyspace.touch(key)
    return b"".join(parts)
