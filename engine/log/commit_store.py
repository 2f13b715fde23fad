"""Commit record files ``<name>.commit.<sequence>``: atomic writes, newest valid one wins."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from faster_backend.engine.log.errors import LogCorruptionError
from faster_backend.engine.log.format import CommitRecord

log = logging.getLogger(__name__)

KEEP = 2  # the newest record plus the previous one to fall back to


class CommitStore:
    """Writes each commit record to a new file (temp + fsync + rename + fsync of the directory)
    and keeps the previous one, so a damaged newest file falls back to the one before."""

    def __init__(self, directory: Path, name: str) -> None:
        self.directory = directory
        self.prefix = f"{name}.commit."
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob(f"{self.prefix}*.tmp"):
            stale.unlink()  # a commit that crashed before its rename never happened

    def path(self, sequence: int) -> Path:
        return self.directory / f"{self.prefix}{sequence:012d}"

    def sequences(self) -> list[int]:
        found = []
        for entry in os.scandir(self.directory):
            if entry.name.startswith(self.prefix):
                suffix = entry.name[len(self.prefix) :]
                if suffix.isdigit():
                    found.append(int(suffix))
        return sorted(found)

    def load(self) -> CommitRecord | None:
        """The newest valid record; ``None`` if there is no record at all.

        Damaged newer files are skipped with a warning naming them; if every file is damaged
        the log cannot be recovered safely and ``LogCorruptionError`` is raised.
        """
        sequences = self.sequences()
        problems: list[str] = []
        for sequence in reversed(sequences):
            path = self.path(sequence)
            try:
                record = CommitRecord.decode(path.read_bytes())
                if record.sequence != sequence:
                    raise ValueError(
                        f"offset 16: sequence {record.sequence} does not match the file name"
                    )
            except (OSError, ValueError) as exc:
                problems.append(f"{path}: {exc}")
                log.warning(
                    "FasterLog commit record %s is damaged (%s); falling back to the previous"
                    " commit",
                    path,
                    exc,
                )
                continue
            return record
        if problems:
            raise LogCorruptionError(
                "no valid commit record; damaged: " + "; ".join(problems),
                str(self.path(sequences[-1])),
                0,
            )
        return None

    def write(self, record: CommitRecord) -> None:
        path = self.path(record.sequence)
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            data = record.encode()
            written = 0
            while written < len(data):
                written += os.write(fd, data[written:])
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        self._sync_directory()
        for old in self.sequences()[:-KEEP]:
            self.path(old).unlink(missing_ok=True)

    def _sync_directory(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
