"""Fetch Django's own cache test package (tests/cache of the sdist matching the installed Django).

The sdist comes from PyPI through pip at test time and is unpacked into a cache directory
outside the repository (``$FASTER_BACKEND_CACHE``, else ``$XDG_CACHE_HOME/faster-backend``, else
``~/.cache/faster-backend``); nothing of Django's is committed here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import django

# Why Django's suite could not be fetched (its test then fails with this message).
SUITE_ERROR: list[str] = []


def cache_root() -> Path:
    explicit = os.environ.get("FASTER_BACKEND_CACHE")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "faster-backend"


def fetch_cache_tests() -> Path:
    """A directory holding Django's ``cache`` test package, importable as ``cache``."""
    version = django.__version__
    if django.VERSION[:2] != (5, 2):
        raise RuntimeError(f"the acceptance suite is Django 5.2's; Django {version} is installed")
    root = cache_root()
    target = root / f"django-{version}-tests"
    if (target / "cache" / "tests.py").is_file():
        return target
    sdists = root / "sdist"
    sdists.mkdir(parents=True, exist_ok=True)
    archive = sdists / f"django-{version}.tar.gz"
    if not archive.is_file():
        # Download next to the final name and rename: a concurrent run never sees half a file.
        download = Path(tempfile.mkdtemp(dir=sdists, prefix=".download-"))
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "pip", "download", "--no-binary", ":all:", "--no-deps",
                 "--disable-pip-version-check", "-d", str(download), f"django=={version}"],
                capture_output=True,
                text=True,
                timeout=300,
            )
            found = sorted(download.glob(f"[Dd]jango-{version}.tar.gz"))
            if proc.returncode != 0 or not found:
                raise RuntimeError(
                    f"pip download of django=={version} failed:\n{proc.stderr[-2000:]}"
                )
            found[0].replace(archive)
        finally:
            shutil.rmtree(download, ignore_errors=True)
    prefix = f"django-{version}/tests/cache/"
    staging = Path(tempfile.mkdtemp(dir=root, prefix=".unpack-"))
    try:
        with tarfile.open(archive) as tar:
            for member in tar.getmembers():
                name = member.name
                if not name.lower().startswith(prefix) or not member.isfile():
                    continue
                rel = name[len(prefix):]
                out = staging / "cache" / rel
                out.parent.mkdir(parents=True, exist_ok=True)
                src = tar.extractfile(member)
                assert src is not None
                out.write_bytes(src.read())
        if not (staging / "cache" / "tests.py").is_file():
            raise RuntimeError(f"{archive} has no tests/cache/tests.py")
        try:
            staging.rename(target)
        except OSError:  # another run unpacked it first
            if not (target / "cache" / "tests.py").is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
