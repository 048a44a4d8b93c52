"""Small file operations shared by caches, outputs and files holding personal data.

Exports and graphs are built once and read by every worker afterwards, so
they are written in a way a crash or a second process cannot half-see: a
lock while building, atomic replacement of the file that commits a build,
and checksums recorded for the files it names.

Files on their way to a final name (``atomic_write``'s temporaries, batch
outputs being written) carry the host and pid of their writer in their name
(:func:`temporary_path`). A process killed with SIGKILL cannot clean up after
itself, so whoever starts next in that folder calls :func:`sweep_temporaries`,
which deletes exactly the temporaries whose writer is gone: a temporary of a
live process, or of another host sharing the folder, is never touched.

Files that may hold personal data (shopper texts, references, pairings) are
created ``0600`` from the first byte (:func:`open_private`,
``atomic_write(..., private=True)``): opening with the mode, not chmod after,
so no other user can open them in between.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import secrets
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

#: ``.<target>.~<host>~<pid>~<token>.<tmp|part>``, as :func:`temporary_path` makes them.
TEMPORARY = re.compile(
    r"\.(?P<target>.+)\.~(?P<host>[A-Za-z0-9-]{1,63})~(?P<pid>\d{1,10})~[0-9a-f]{8,32}\.(tmp|part)"
)
PRIVATE_MODE = 0o600
SHARED_MODE = 0o644


def file_sha256(path: Path) -> str:
    """The file's SHA-256, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if missing) for the block."""
    with open(path, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _host() -> str:
    """This host's name as it can appear in a file name (letters, digits and '-')."""
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:63] or "host"


def temporary_path(path: Path, suffix: str = ".tmp") -> Path:
    """A fresh hidden name beside ``path`` saying who writes it, for :func:`sweep_temporaries`."""
    if suffix not in (".tmp", ".part"):
        raise ValueError(f"temporary suffix {suffix!r} is not .tmp or .part")
    token = secrets.token_hex(6)
    return path.with_name(f".{path.name}.~{_host()}~{os.getpid()}~{token}{suffix}")


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host (a zombie counts as alive)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    except (OverflowError, OSError):
        return False
    return True


def sweep_temporaries(folder: str | Path) -> int:
    """Delete the temporaries in ``folder`` left by processes of this host that have stopped.

    Returns:
        How many files were deleted (0 for a missing folder).
    """
    try:
        names = os.listdir(folder)
    except (FileNotFoundError, NotADirectoryError):
        return 0
    host, deleted = _host(), 0
    for name in names:
        found = TEMPORARY.fullmatch(name)
        if found is None or found["host"] != host or pid_alive(int(found["pid"])):
            continue
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(folder, name))
            deleted += 1
    return deleted


def open_private(path: str | Path, mode: str = "w", **options: Any) -> IO[Any]:
    """``open(path, mode)`` for writing, the file created (or truncated) with mode 0600.

    A file that already existed with a wider mode is narrowed before anything is written.
    """
    if mode[0] not in "wax":
        raise ValueError(f"open_private is for writing, not mode {mode!r}")
    flags = os.O_WRONLY | os.O_CREAT | {"w": os.O_TRUNC, "a": os.O_APPEND, "x": os.O_EXCL}[mode[0]]
    fd = os.open(path, flags, PRIVATE_MODE)
    try:
        os.fchmod(fd, PRIVATE_MODE)
        return open(fd, mode, **options)
    except BaseException:
        os.close(fd)
        raise


def atomic_write(path: Path, data: bytes, *, private: bool = False) -> None:
    """Write ``data`` to ``path`` so readers see the old file or the new one, never a part.

    The data and then the folder are synced, so after a crash the new name
    points at the whole new file or the old one is still there; a temporary
    left by a crash is swept by the next :func:`sweep_temporaries`.

    Args:
        private: the data is personal: the file is ``0600``. Otherwise ``0644``,
            since model caches and indexes hold none and web workers may run as
            another user.
    """
    tmp = temporary_path(path)
    try:
        with open_private(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            if not private:
                os.fchmod(handle.fileno(), SHARED_MODE)
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_folder(path.parent)


def fsync_folder(folder: Path) -> None:
    """Sync a folder, so a rename or an unlink in it survives a power cut."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
