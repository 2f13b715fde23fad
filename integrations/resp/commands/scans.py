"""Argument parsing for HSCAN / SSCAN / ZSCAN (cursor MATCH COUNT [NOVALUES])."""

from __future__ import annotations

from faster_backend.integrations.resp.commands._util import SYNTAX, to_int
from faster_backend.integrations.resp.types import RespError


def parse_scan(
    argv: list[bytes], allow_novalues: bool = False
) -> tuple[int, bytes | None, int, bool]:
    """(cursor, match pattern, count, novalues) of ``XSCAN key cursor [options]``."""
    raw = argv[2]
    if not raw.isdigit() or int(raw) >= 2**64:
        raise RespError("ERR invalid cursor")
    match: bytes | None = None
    count = 10
    novalues = False
    i = 3
    n = len(argv)
    while i < n:
        opt = argv[i].upper()
        if opt == b"NOVALUES" and allow_novalues:
            novalues = True
            i += 1
            continue
        if i + 1 >= n:
            raise SYNTAX
        if opt == b"COUNT":
            count = to_int(argv[i + 1])
            if count < 1:
                raise SYNTAX
        elif opt == b"MATCH":
            match = argv[i + 1]
        else:
            raise SYNTAX
        i += 2
    return int(raw), match, count, novalues
