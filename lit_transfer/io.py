"""Files that must not be lost or mixed up: atomic writes, folder locks, names that stay inside their folder.

Every state and result file is written through ``write_atomic``: a unique temporary file beside the target,
fsynced, renamed over it, and the folder fsynced, so a crash leaves the old file or the new one, never half of
one. Output folders (``tune``, ``metadata build``, ``evaluate``) are held with ``FolderLock`` by the process that
writes them, so a second process gets a clear error at once instead of training the same trial in the same place.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

LOCK_FILE = ".lock"


class LockedError(RuntimeError):
    """Another process holds the folder."""


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # some filesystems do not open folders; the rename is still atomic
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomic(path: str | Path, data: str | bytes) -> None:
    """Replace ``path`` with ``data`` atomically and durably."""
    tmp = temporary_path(path)
    try:
        tmp.write_bytes(data.encode() if isinstance(data, str) else data)
        commit_file(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def commit_file(written: str | Path, path: str | Path) -> None:
    """Make a written file (ours, or a checkpoint another writer produced) durable, then move it over ``path``
    atomically."""
    with open(written, "rb") as f:
        os.fsync(f.fileno())
    os.replace(written, path)
    _fsync_dir(Path(path).parent)


def temporary_path(path: str | Path) -> Path:
    """A unique, hidden name beside ``path`` for a file about to replace it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    return Path(name)


def write_json_atomic(path: str | Path, payload: Any, **dumps: Any) -> None:
    write_atomic(path, json.dumps(payload, indent=1, **dumps))


class FolderLock:
    """An exclusive, non-blocking lock on a folder (``fcntl.flock`` on ``FOLDER/.lock``), released when the process
    ends, however it ends — a killed process never leaves a stale lock behind."""

    def __init__(self, folder: str | Path, what: str = "this folder") -> None:
        self.folder, self.what = Path(folder), what
        self._fd: int | None = None

    def __enter__(self) -> FolderLock:
        import fcntl

        if self.folder.exists() and not self.folder.is_dir():
            raise NotADirectoryError(f"{self.folder}: a file, not a folder (the output folder of {self.what})")
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            holder = _read_pid(self.folder / LOCK_FILE)
            raise LockedError(
                f"{self.folder}: in use by another process{f' (pid {holder})' if holder else ''}; "
                f"wait for it to finish or use another folder for {self.what}"
            ) from None
        previous = _read_pid(self.folder / LOCK_FILE)
        if previous and previous != str(os.getpid()):  # its holder ended without releasing it: killed
            print(f"note: {self.folder}: taking over the lock of process {previous}, which ended without releasing "
                  "it", file=sys.stderr)  # fmt: skip
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        import fcntl

        if self._fd is not None:
            # unlock before closing: a forked worker may hold a copy of this descriptor, and closing ours alone
            # would leave the folder locked until that worker exits
            os.ftruncate(self._fd, 0)  # released cleanly: no holder left to take over from
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def _read_pid(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def safe_name(name: str, what: str = "name") -> str:
    """``name`` if it can be one path component inside an output folder (no ``/``, ``..``, absolute paths or
    hidden names); otherwise a ``ValueError`` naming it."""
    if not _SAFE.match(name) or name in (".", ".."):
        raise ValueError(f"{what} {name!r} cannot be used as a file name (letters, digits, '.', '_', '-' only)")
    return name


def inside(folder: str | Path, *parts: str) -> Path:
    """``folder/parts...``, refusing any result that leaves ``folder``."""
    root = Path(folder).resolve()
    path = root.joinpath(*parts).resolve()
    if path != root and root not in path.parents:
        raise ValueError(f"{Path(*parts)} would be outside {folder}")
    return path


def write_qa_folder(splits: dict[str, list[dict[str, str]]], out_dir: str | Path) -> Path:
    """A QA dataset folder (the data contract): one ``<split>.jsonl`` per split, one example per line."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for split, rows in splits.items():
        write_atomic(out_dir / f"{split}.jsonl", "".join(json.dumps(row) + "\n" for row in rows))
    return out_dir
