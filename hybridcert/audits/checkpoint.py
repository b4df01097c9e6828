"""Checkpoint and resume of an audit: the output folder's lock, the append-only log, and reading it back.

Guarantees (docs/theory.md §5 makes every input's certificate a function of its own seeded samples, so the
order and the number of runs do not matter as long as each input is logged exactly once):

- one audit at a time per output folder: ``OutputLock`` holds an exclusive ``fcntl.flock`` on ``OUT/audit.lock``
  for the whole run; a second ``hybridcert audit`` (``--resume`` or not) on the same folder is refused at once,
  naming the running one (pid, host, start time written in the lock file). Two writers would interleave
  duplicate lines that make every later resume fail. The kernel releases the lock when its holder dies, so a
  killed audit never leaves a stale lock behind (only the file, which the next run takes over).
- every finished input is one line of ``OUT/results.log.jsonl``, flushed and fsynced before the next is
  written, after a header holding the configuration hash; ``read_log`` drops a torn last line (a write cut by
  the kill) and refuses another audit's log, a line logged twice and an input not in the dataset.
- a refused or failed start leaves nothing behind: ``LogWriter`` removes a log that holds no finished input
  yet, and the lock removes the folder it created when it is left empty.

flock is advisory and local: it does not protect a folder shared over NFS between machines.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import stat
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from hybridcert.results.atomic import fsync_dir, open_append_nofollow, open_rw_nofollow
from hybridcert.results.canonical import canonical_dumps
from hybridcert.results.schema import InputResult

LOG_NAME = "results.log.jsonl"
RESULTS_NAME = "results.json"
LOCK_NAME = "audit.lock"
LOG_SCHEMA = "hybridcert/audit-log/v1"


def check_out_dir(out_dir: Path, resume: bool, overwrite: bool) -> None:
    """Refuse to mix audits: an existing log needs --resume (continue) or --overwrite (start again)."""
    log_path, results_path = out_dir / LOG_NAME, out_dir / RESULTS_NAME
    if resume and overwrite:
        raise ValueError("give --resume or --overwrite, not both")
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"--out {out_dir} exists and is not a folder")
    if resume and not log_path.is_file():
        raise ValueError(f"--resume: no audit log {log_path} to continue")
    if not resume and not overwrite and (log_path.exists() or results_path.exists()):
        raise ValueError(f"{out_dir} already holds an audit; pass --resume to continue it, --overwrite to "
                         "start again, or choose another --out")


def _holder(path: Path) -> str:
    """Who holds the lock, from the lock file (pid, host, start time), for the refusal message."""
    try:
        with path.open("rb") as fh:
            info = json.loads(fh.read(4096).decode("utf-8"))
        return f"pid {int(info['pid'])} on {str(info['host'])[:200]}, started {str(info['started'])[:40]}"
    except (OSError, ValueError, KeyError, TypeError):
        return "details unreadable"


class OutputLock:
    """An exclusive lock on an output folder, held from ``__enter__`` to ``__exit__`` (module docstring).

    Creates the folder when absent (and removes it again on exit when it is then empty, so a refused start
    leaves nothing). Raises ValueError naming the running audit when another process holds the lock.
    """

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = Path(out_dir)
        self.path = self.out_dir / LOCK_NAME
        self._fd: int | None = None
        self._created_dir = False

    def __enter__(self) -> OutputLock:
        if not self.out_dir.exists():
            self.out_dir.mkdir(parents=True)
            self._created_dir = True
        try:
            self._acquire()
        except BaseException:
            self._remove_dir()
            raise
        return self

    def _acquire(self) -> None:
        for _ in range(100):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
            except OSError as exc:
                raise ValueError(f"{self.path}: cannot open the audit lock ({exc.strerror})") from exc
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise ValueError(f"{self.out_dir} is in use by another audit ({_holder(self.path)}); wait "
                                     "for it to finish or stop it, or choose another --out") from None
                raise ValueError(f"{self.path}: cannot lock ({exc.strerror})") from exc
            # the holder before us may have removed the file between our open and our flock: then we hold a
            # lock on a file nobody else can see; start again on the current one
            try:
                same = os.path.samestat(os.fstat(fd), os.lstat(self.path))
            except FileNotFoundError:
                same = False
            if same and stat.S_ISREG(os.fstat(fd).st_mode):
                info = {"pid": os.getpid(), "host": socket.gethostname(),
                        "started": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
                os.ftruncate(fd, 0)
                os.pwrite(fd, (json.dumps(info) + "\n").encode("utf-8"), 0)
                os.fsync(fd)
                self._fd = fd
                return
            os.close(fd)
        raise ValueError(f"{self.path}: could not take the audit lock")

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._fd is not None:
            self.path.unlink(missing_ok=True)  # still holding the lock: a newcomer sees the file gone and retries
            os.close(self._fd)
            self._fd = None
        self._remove_dir()

    def _remove_dir(self) -> None:
        if self._created_dir:
            try:
                self.out_dir.rmdir()  # only when empty
            except OSError:
                pass


def append_line(fh: IO[str], obj: Any) -> None:
    """One canonical JSON line, flushed and fsynced before returning (the unit of the checkpoint)."""
    fh.write(canonical_dumps(obj) + "\n")
    fh.flush()
    os.fsync(fh.fileno())


class LogWriter:
    """The append-only log of one run: a header when the log is new, then one line per finished input.

    On an error before any input was logged, a log this run created is removed again (nothing half-written:
    a later plain run would otherwise find a stale header and refuse the folder).
    """

    def __init__(self, path: Path, config_hash: str, config: dict[str, Any]) -> None:
        self.path = Path(path)
        self._new = not self.path.is_file() or self.path.stat().st_size == 0
        self._header = {"type": "header", "schema": LOG_SCHEMA, "config_hash": config_hash, "config": config}
        self._fh: IO[str] | None = None
        self.logged = 0

    def __enter__(self) -> LogWriter:
        self._fh = open_append_nofollow(self.path)
        if self._new:
            try:
                append_line(self._fh, self._header)
            except BaseException:
                self._close(remove=True)
                raise
        return self

    def write(self, results: list[InputResult], done: dict[str, InputResult], total: int,
              progress: Callable[[int, int], None] | None) -> None:
        """Log each result, then record it in ``done`` and report progress."""
        assert self._fh is not None
        for result in results:
            append_line(self._fh, {"type": "input", "result": result.model_dump(mode="json")})
            self.logged += 1
            done[result.id] = result
            if progress:
                progress(len(done), total)

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._close(remove=kind is not None and self._new and self.logged == 0)

    def _close(self, remove: bool) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        if remove:
            self.path.unlink(missing_ok=True)
            fsync_dir(self.path.parent)


MAX_LOG_LINE = 1 << 20
"""Bytes a log line may take (a result with its frontier and baselines takes a few kilobytes)."""


def start_locked(out_dir: Path, resume: bool, overwrite: bool, config_hash: str,
                 ids: Sequence[str]) -> dict[str, InputResult]:
    """Under the folder's :class:`OutputLock`: check the folder again (:func:`check_out_dir`), then return the
    records a resumed audit has logged already (:func:`read_log`), or, starting again, remove the earlier
    results and log and return none."""
    check_out_dir(out_dir, resume, overwrite)
    if resume:
        return read_log(out_dir / LOG_NAME, config_hash, set(ids))
    (out_dir / RESULTS_NAME).unlink(missing_ok=True)
    (out_dir / LOG_NAME).unlink(missing_ok=True)
    return {}


def read_log(path: Path, config_hash: str, known_ids: set[str]) -> dict[str, InputResult]:
    """The inputs already finished in a log; drops a torn last line; refuses another audit's log.

    The log is read back from an output folder, so it is checked like any other input: its size is bounded by
    one line per known input (``MAX_LOG_LINE`` each) before it is read, every line must parse as a result of an
    input of this dataset, and none may appear twice."""
    size = path.stat().st_size
    if size > (len(known_ids) + 1) * MAX_LOG_LINE:
        raise ValueError(f"{path}: {size} bytes, more than a log of {len(known_ids)} inputs can hold: not this "
                         "audit's log; use a new --out")
    data = path.read_bytes()
    lines = data.split(b"\n")
    complete = lines[:-1]  # after the last newline: empty, or a torn write
    if lines[-1]:
        # a torn last line (the process died mid-write): cut it so the log stays line-aligned
        with open_rw_nofollow(path) as fh:
            fh.truncate(len(data) - len(lines[-1]))
            fh.flush()
            os.fsync(fh.fileno())
    if not complete:
        return {}
    try:
        header = json.loads(complete[0])
    except json.JSONDecodeError:
        raise ValueError(f"{path}: the first line is not an audit log header") from None
    if not isinstance(header, dict) or header.get("type") != "header":
        raise ValueError(f"{path}: the first line is not an audit log header")
    if header.get("config_hash") != config_hash:
        raise ValueError(f"{path} was written by a different audit (config, filter or dataset changed): "
                         "cannot resume it; use a new --out")
    done: dict[str, InputResult] = {}
    for number, raw in enumerate(complete[1:], start=2):
        try:
            obj = json.loads(raw)
            result = InputResult.model_validate(obj["result"])
        except Exception:
            raise ValueError(f"{path}:{number}: corrupt log line") from None
        if result.id not in known_ids:
            raise ValueError(f"{path}:{number}: input {result.id!r} is not in the dataset")
        if result.id in done:
            raise ValueError(f"{path}:{number}: input {result.id!r} logged twice")
        done[result.id] = result
    return done
