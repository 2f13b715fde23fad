"""Byte sizes written the way operators write them: 4096, "64MiB", "1.5GB"."""

import re

_UNITS = {
    "": 1,
    "b": 1,
    "k": 1024,
    "kb": 1000,
    "kib": 1024,
    "m": 1024**2,
    "mb": 1000**2,
    "mib": 1024**2,
    "g": 1024**3,
    "gb": 1000**3,
    "gib": 1024**3,
    "t": 1024**4,
    "tb": 1000**4,
    "tib": 1024**4,
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def parse_size(value: int | str, *, name: str = "size") -> int:
    """Return a byte count; ``name`` is used in the error message."""
    if isinstance(value, bool):
        raise ValueError(f"{name}: expected a size such as 4096 or '64MiB', got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"{name}: a size cannot be negative ({value})")
        return value
    if isinstance(value, str):
        match = _SIZE.match(value)
        if match:
            unit = _UNITS.get(match.group(2).lower())
            if unit is not None:
                return int(float(match.group(1)) * unit)
    raise ValueError(
        f"{name}: expected a size such as 4096, '512KiB', '64MiB' or '1GB', got {value!r}"
    )
