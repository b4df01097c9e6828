"""The one file writer of the project: exclusive, atomic, durable, and never following a planted link.

Every file hybridcert writes (results.json, logs, reports, envelopes, certificates, keys, demo data) goes
through :func:`write_bytes_atomic` (or :func:`open_append_nofollow` for the append-only audit log). Guarantees:

- exclusive: the temporary file is created by :func:`tempfile.mkstemp` in the target's folder
  (``O_CREAT | O_EXCL``, a fresh random name), so a symlink planted at any fixed name (the old ``NAME.tmp``)
  is never opened or written through;
- no following of the target: a symlink at the target itself is refused (``ValueError``); ``os.replace``
  renames over a link that appears later instead of writing through it;
- atomic: readers see the old bytes or the new bytes, never a half-written file (write, ``fsync`` the
  file, ``os.replace``, ``fsync`` the folder);
- clean: on any error (including KeyboardInterrupt) the temporary file is removed; nothing is left behind;
- mode: the file gets exactly ``mode`` (0644 by default, 0600 for private keys), whatever the umask.

``overwrite=False`` publishes with ``os.link`` instead of ``os.replace``: the call fails with
``FileExistsError`` when anything (file or link) already exists at the target, atomically.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path
from typing import IO

__all__ = [
    "check_writable", "fsync_dir", "open_append_nofollow", "open_rw_nofollow", "write_bytes_atomic",
    "write_text_atomic",
]

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def _refuse_link(path: Path) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode):
        raise ValueError(f"{path}: refusing to write through a symbolic link")
    if not stat.S_ISREG(st.st_mode):
        raise ValueError(f"{path}: refusing to replace something that is not a regular file")


def check_writable(*paths: Path | str) -> None:
    """Refuse, before anything is written, every target that :func:`write_bytes_atomic` would refuse (a link
    or something that is not a regular file): a command that writes several files checks them all first, so
    a refusal leaves the folder as it was instead of half rewritten."""
    for path in paths:
        _refuse_link(Path(path))


def fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (POSIX); a no-op where folders cannot be opened (Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_bytes_atomic(path: Path | str, data: bytes, mode: int = 0o644, *, overwrite: bool = True) -> None:
    """Write ``data`` to ``path`` exclusively and atomically (module docstring: the guarantees)."""
    path = Path(path)
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"write_bytes_atomic needs bytes, got {type(data).__name__}")
    _refuse_link(path)
    folder = path.parent
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), mode)
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if overwrite:
            _refuse_link(path)
            os.replace(tmp, path)
        else:
            os.link(tmp, path)
            tmp.unlink()
        fsync_dir(folder)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path: Path | str, text: str, mode: int = 0o644, *, overwrite: bool = True) -> None:
    """:func:`write_bytes_atomic` of ``text`` encoded as UTF-8."""
    write_bytes_atomic(path, text.encode("utf-8"), mode, overwrite=overwrite)


def open_append_nofollow(path: Path | str, mode: int = 0o644) -> IO[str]:
    """Open ``path`` for appending text (created with exactly ``mode`` when absent), refusing a symbolic link.

    For append-only logs, whose every line is flushed and fsynced by the caller; ``O_NOFOLLOW`` makes the
    open fail on a link planted at ``path`` (also one planted between a check and the open)."""
    path = Path(path)
    _refuse_link(path)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | _NOFOLLOW, mode)
    except OSError as exc:
        raise ValueError(f"{path}: cannot open for appending ({exc.strerror})") from exc
    try:
        if os.fstat(fd).st_size == 0:
            os.fchmod(fd, mode)  # a new log gets exactly ``mode``, like every other output, whatever the umask
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "a", encoding="utf-8")


def open_rw_nofollow(path: Path | str) -> IO[bytes]:
    """Open an existing regular file for reading and writing (binary), refusing a symbolic link."""
    path = Path(path)
    _refuse_link(path)
    try:
        fd = os.open(path, os.O_RDWR | _NOFOLLOW)
    except OSError as exc:
        raise ValueError(f"{path}: cannot open ({exc.strerror})") from exc
    return os.fdopen(fd, "r+b")
