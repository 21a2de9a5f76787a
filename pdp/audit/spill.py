"""The spill file: where records wait, on local disk, for the database.

A spill file is append-only and framed: each record is ::

    [4-byte big-endian length][4-byte big-endian CRC32 of the payload][payload]

where the payload is the record's canonical JSON (:meth:`AuditRecord.to_json`).
:func:`read_frames` reads the frames in order and stops at the end, at a *torn
tail* (a last frame shorter than its header says: a write cut short by a crash,
never acknowledged; ignored), or at a frame whose CRC does not match (reported:
the file is damaged, and nothing after it can be trusted).

:class:`SpillFile` is one process's file, ``spill-<pid>-<random>.log`` in the
spill directory, held under an exclusive ``flock`` for as long as the process
lives: a file that can be locked belongs to no live process (its writer died, or
rotated it away) and may be replayed by anyone who takes the lock
(:func:`claim_orphans`). A write that fails part-way is cut back, so that a
later frame never follows garbage.

A spill directory may be given a size limit (``max_bytes``): a write that would
take the spill files in it (every process's, the damaged ones kept for an operator
included) past the limit is refused with :class:`SpillFull`, an ``OSError``
(``ENOSPC``) like a full disk, which the writer treats the same way: the record
is kept in memory while there is room, else the decision is not answered.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import secrets
import struct
import threading
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

_HEADER = struct.Struct(">II")
#: Larger frames are refused when reading (a damaged length field).
MAX_FRAME_BYTES = 64 * 1024 * 1024
PREFIX = "spill-"
SUFFIX = ".log"
CORRUPT_SUFFIX = ".corrupt"


class SpillFull(OSError):
    """The spill directory holds as much as it may (``PDP_AUDIT_SPILL_MAX_MB``)."""


def directory_bytes(directory: str | os.PathLike) -> int:
    """Bytes in the spill files of ``directory`` (live, being created, damaged)."""
    total = 0
    try:
        entries = os.scandir(directory)
    except FileNotFoundError:
        return 0
    with entries:
        for entry in entries:
            if entry.name.startswith(PREFIX):
                try:
                    total += entry.stat(follow_symlinks=False).st_size
                except FileNotFoundError:        # replayed and removed meanwhile
                    pass
    return total


def frame(payload: bytes) -> bytes:
    return _HEADER.pack(len(payload), zlib.crc32(payload) & 0xFFFFFFFF) + payload


@dataclass(slots=True)
class ReadResult:
    payloads: list[bytes]
    #: A frame whose CRC (or length) is wrong was found at this byte offset.
    corrupt_at: int | None = None
    #: Bytes of an incomplete last frame that were ignored.
    torn_bytes: int = 0


def read_frames(data: bytes) -> ReadResult:
    """The payloads of ``data`` in order; see the module docstring."""
    out = ReadResult([])
    pos, size = 0, len(data)
    while pos < size:
        if size - pos < _HEADER.size:
            out.torn_bytes = size - pos
            break
        length, crc = _HEADER.unpack_from(data, pos)
        if length > MAX_FRAME_BYTES:
            out.corrupt_at = pos
            break
        end = pos + _HEADER.size + length
        if end > size:
            out.torn_bytes = size - pos
            break
        payload = data[pos + _HEADER.size:end]
        if zlib.crc32(payload) & 0xFFFFFFFF != crc:
            out.corrupt_at = pos
            break
        out.payloads.append(payload)
        pos = end
    return out


def read_file(path: str | os.PathLike) -> ReadResult:
    return read_frames(Path(path).read_bytes())


class SpillFile:
    """This process's spill file (created on first write); thread-safe."""

    def __init__(self, directory: str | os.PathLike, max_bytes: int | None = None):
        self.directory = Path(directory)
        #: The most the directory's spill files may hold together (``None``: no limit).
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._fd: int | None = None
        self.path: Path | None = None
        self._pid = os.getpid()

    def _open(self) -> int:
        if self._fd is not None and self._pid == os.getpid():
            return self._fd
        self.directory.mkdir(parents=True, exist_ok=True)
        self._pid = os.getpid()
        path = self.directory / f"{PREFIX}{self._pid}-{secrets.token_hex(6)}{SUFFIX}"
        # Created under another name and locked before it gets its real one, so
        # that no replayer can take an unlocked new file for an orphan.
        creating = path.with_name(path.name + ".new")
        fd = os.open(creating, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC,
                     0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.rename(creating, path)
        except OSError:
            os.close(fd)
            creating.unlink(missing_ok=True)
            raise
        self._fd, self.path = fd, path
        return fd

    def append(self, payloads: Iterable[bytes], *, fsync: bool) -> int:
        """Append the payloads as frames in one write (fsynced if asked); raises
        ``OSError`` when the file cannot be written, :class:`SpillFull` when the
        directory's limit would be passed (nothing is then kept)."""
        data = b"".join(frame(p) for p in payloads)
        if not data:
            return 0
        with self._lock:
            if self.max_bytes is not None:
                held = directory_bytes(self.directory)
                if held + len(data) > self.max_bytes:
                    raise SpillFull(errno.ENOSPC,
                                    f"the spill directory {self.directory} holds {held:,} "
                                    f"bytes; {len(data):,} more would pass its limit of "
                                    f"{self.max_bytes:,} (PDP_AUDIT_SPILL_MAX_MB)")
            fd = self._open()
            start = os.lseek(fd, 0, os.SEEK_END)
            try:
                written = os.write(fd, data)
                if written != len(data):
                    raise OSError(errno.EIO, f"short write to {self.path}")
                if fsync:
                    os.fsync(fd)
            except OSError:
                try:
                    os.ftruncate(fd, start)
                except OSError:
                    pass
                raise
        return len(data)

    def size(self) -> int:
        with self._lock:
            if self._fd is None or self._pid != os.getpid():
                return 0
            return os.fstat(self._fd).st_size

    def rotate(self) -> tuple[Path, int] | None:
        """Hand over the current file for replay: ``(path, locked fd)``, or ``None``
        when there is nothing in it. The next append starts a new file."""
        with self._lock:
            if self._fd is None or self._pid != os.getpid():
                return None
            fd, path = self._fd, self.path
            if os.fstat(fd).st_size == 0:
                return None
            self._fd = self.path = None
            return path, fd

    def close(self) -> None:
        """Close the file; remove it if empty (a non-empty one waits for a replay)."""
        with self._lock:
            if self._fd is None or self._pid != os.getpid():
                self._fd = None
                return
            fd, path = self._fd, self.path
            self._fd = self.path = None
            try:
                if os.fstat(fd).st_size == 0 and path is not None:
                    path.unlink(missing_ok=True)
            finally:
                os.close(fd)


def claim_orphans(directory: str | os.PathLike) -> Iterator[tuple[Path, int]]:
    """The spill files in ``directory`` that no live process holds, oldest first,
    each as ``(path, fd)`` with the lock taken (the caller replays, then
    :func:`release`)."""
    directory = Path(directory)
    if not directory.is_dir():
        return
    files = sorted(directory.glob(f"{PREFIX}*{SUFFIX}"),
                   key=lambda p: (p.stat().st_mtime if p.exists() else 0, p.name))
    for path in files:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)                          # held by a live process
            continue
        if not path.exists():                     # replayed and removed meanwhile
            os.close(fd)
            continue
        yield path, fd


def release(path: Path, fd: int, *, done: bool, corrupt: bool = False) -> None:
    """After a replay: remove the file (``done``), or keep it aside (``corrupt``:
    renamed ``*.corrupt`` for an operator), or leave it for the next try."""
    try:
        if corrupt:
            os.replace(path, path.with_name(path.name + CORRUPT_SUFFIX))
        elif done:
            path.unlink(missing_ok=True)
    finally:
        os.close(fd)


def read_fd(fd: int) -> ReadResult:
    chunks = []
    offset = 0
    while True:
        chunk = os.pread(fd, 1 << 20, offset)
        if not chunk:
            break
        chunks.append(chunk)
        offset += len(chunk)
    return read_frames(b"".join(chunks))
