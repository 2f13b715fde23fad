"""Redis-style glob patterns (``*``, ``?``, ``[a-z]``, ``[^x]``, ``\\`` escapes) as regexes."""

from __future__ import annotations

import re
from functools import lru_cache

_SPECIAL = frozenset("*?[]\\")


def escape(text: str) -> str:
    """``text`` with every glob metacharacter escaped, so that it matches only itself."""
    return "".join("\\" + c if c in _SPECIAL else c for c in text)


@lru_cache(maxsize=256)
def compile_glob(pattern: str) -> re.Pattern[str]:
    """A compiled regex whose ``fullmatch`` follows Redis' stringmatchlen rules."""
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        i += 1
        if c == "*":
            out.append(".*")
        elif c == "?":
            out.append(".")
        elif c == "\\" and i < n:
            out.append(re.escape(pattern[i]))
            i += 1
        elif c == "[":
            negate = i < n and pattern[i] == "^"
            if negate:
                i += 1
            parts: list[str] = []
            while i < n and pattern[i] != "]":
                ch = pattern[i]
                if ch == "\\" and i + 1 < n:
                    parts.append(re.escape(pattern[i + 1]))
                    i += 2
                elif i + 2 < n and pattern[i + 1] == "-" and pattern[i + 2] != "]":
                    lo, hi = sorted((ch, pattern[i + 2]))
                    parts.append(f"{re.escape(lo)}-{re.escape(hi)}")
                    i += 3
                else:
                    parts.append(re.escape(ch))
                    i += 1
            i += 1  # the closing bracket (Redis tolerates a missing one)
            if not parts:
                out.append("[^\\s\\S]" if not negate else "[\\s\\S]")
            else:
                out.append("[" + ("^" if negate else "") + "".join(parts) + "]")
        else:
            out.append(re.escape(c))
    return re.compile("".join(out), re.DOTALL)
