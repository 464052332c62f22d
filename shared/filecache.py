"""A bounded cache of stored files on this host's disk, for readers that need a path (the video
decoder). Every worker process of a host shares it: the first process that wants a file
downloads it while the others wait on a lock, so the segments of one video cost one download per
host, however many of them run here.

Files are kept as ``<dir>/<job id>/<name>``. A reader holds a shared ``flock`` on the file while
it uses it; eviction (oldest use first, once the total passes the bound) takes only files it can
lock exclusively, so a file in use is never removed. The bound is therefore soft: a file larger
than the whole cache is still fetched, and evicted once nobody uses it.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger("rrr.storage")


class FileCache:
    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = root
        self.max_bytes = max_bytes

    @contextmanager
    def path(self, key: str, fetch: Callable[[Path], None]) -> Iterator[Path]:
        """A local copy of ``key`` (``<job id>/<name>``, already checked by the storage), made
        by ``fetch(destination)`` unless this host has it; valid until the block ends."""
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.with_name(path.name + ".lock"), "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one download per host; the others wait here
            if not path.is_file():
                self._fill(path, fetch)
            handle = open(path, "rb")  # noqa: SIM115 (held, locked, until the reader is done)
            fcntl.flock(handle, fcntl.LOCK_SH)
        try:
            os.utime(path)  # the eviction order: least recently used first
            self.evict()
            yield path
        finally:
            handle.close()

    def _fill(self, path: Path, fetch: Callable[[Path], None]) -> None:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".part")
        os.close(fd)
        try:
            fetch(Path(tmp))
            os.replace(tmp, path)
        finally:
            Path(tmp).unlink(missing_ok=True)

    def evict(self) -> int:
        """Remove least recently used files not in use until the total fits; returns the bytes
        still cached."""
        files = []
        for entry in self.root.glob("*/*"):
            if entry.suffix in (".lock", ".part"):
                continue
            try:
                stat = entry.stat()
            except FileNotFoundError:
                continue
            files.append((stat.st_mtime, stat.st_size, entry))
        total = sum(size for _, size, _ in files)
        for _, size, entry in sorted(files, key=lambda f: f[0]):
            if total <= self.max_bytes:
                break
            if self._remove_unused(entry):
                total -= size
        return total

    def _remove_unused(self, path: Path) -> bool:
        lock_path = path.with_name(path.name + ".lock")
        try:
            with open(lock_path, "a+b") as lock, open(path, "rb") as handle:
                # the key's lock first: no reader is between finding the file and locking it
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                path.unlink()
        except (BlockingIOError, FileNotFoundError):
            return False
        log.info("storage cache: evicted %s", path.relative_to(self.root))
        return True

    def drop_job(self, job_id: str) -> None:
        """Forget this host's copies of a job's files (the job was deleted)."""
        shutil.rmtree(self.root / job_id, ignore_errors=True)

    def cached_bytes(self) -> int:
        return sum(
            f.stat().st_size for f in self.root.glob("*/*") if f.suffix not in (".lock", ".part")
        )
