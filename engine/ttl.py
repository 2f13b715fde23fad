"""Time-to-live arguments shared by the store and its sessions."""

from typing import Any, Final


class _KeepTtl:
    def __repr__(self) -> str:
        return "KEEP_TTL"


KEEP_TTL: Final[Any] = _KeepTtl()
"""``rmw(..., ttl=KEEP_TTL)``: an updated record keeps its expiry; a new one gets none."""

TtlArg = float | None | _KeepTtl
