"""Where trial folders (curve, checkpoints, fit YAML) live, so that a trial step can run, and resume, on any node.

``storage`` is a folder (local, or a shared filesystem every node mounts) or an fsspec URL (``s3://bucket/tune``,
``gs://...``, ``file:///shared/tune``; the backend's package must be installed). A folder is used in place. For a
URL, a step works on a local copy of its trial folder: pulled before the step, pushed after it ends, the curve
last, so the curve in storage (the record of what was trained) never runs ahead of the checkpoints it describes.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from lit_transfer.finetune.run import CURVE_FILE, RunError
from lit_transfer.io import inside


class TrialStorage:
    """Trial folders under ``storage``: ``<storage>/trials/<trial id>/``.

    Args:
        storage: a folder or an fsspec URL.
        cache: where local copies of trials in a URL's storage are kept (default: a folder in the temp dir).
    """

    def __init__(self, storage: str, cache: str | None = None) -> None:
        self.storage = str(storage)
        self.remote = "://" in self.storage
        if self.remote:
            import fsspec

            try:
                self.fs, self.root = fsspec.core.url_to_fs(self.storage)
            except (ImportError, ValueError) as err:  # e.g. s3:// without s3fs installed
                message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
                raise ValueError(f"--storage {self.storage}: {message}") from None
            digest = hashlib.sha1(self.storage.encode()).hexdigest()[:12]
            self.cache = Path(cache or Path(tempfile.gettempdir()) / "lit_transfer-trials" / digest)
        else:
            self.cache = Path(self.storage)

    def url(self, trial: str) -> str:
        """Where the trial lives, as a user would name it."""
        return f"{self.storage.rstrip('/')}/trials/{trial}"

    def local(self, trial: str) -> Path:
        """The trial folder this process works in."""
        return inside(self.cache, "trials", trial)

    def pull(self, trial: str) -> Path:
        """The trial folder, brought up to date with storage (nothing to do for a folder)."""
        folder = self.local(trial)
        if not self.remote:
            return folder
        remote = f"{self.root.rstrip('/')}/trials/{trial}"
        try:
            files = self.fs.find(remote) if self.fs.exists(remote) else []
            shutil.rmtree(folder, ignore_errors=True)
            for path in files:
                target = folder / path[len(remote) :].lstrip("/")
                target.parent.mkdir(parents=True, exist_ok=True)
                self.fs.get_file(path, str(target))
        except OSError as err:
            raise RunError(f"{self.url(trial)}: cannot read the trial from storage ({err})") from err
        return folder

    def curve(self, trial: str) -> dict[str, Any] | None:
        """The trial's recorded ``curve.json`` in storage (None before its first step), read without its
        checkpoints."""
        try:
            if self.remote:
                path = f"{self.root.rstrip('/')}/trials/{trial}/{CURVE_FILE}"
                return json.loads(self.fs.cat_file(path)) if self.fs.exists(path) else None
            path = self.local(trial) / CURVE_FILE
            return json.loads(path.read_text()) if path.exists() else None
        except (OSError, ValueError) as err:
            raise RunError(f"{self.url(trial)}/{CURVE_FILE}: cannot read the trial's curve ({err})") from err

    def push(self, trial: str) -> None:
        """Copy the trial folder to storage, its curve last (nothing to do for a folder)."""
        if not self.remote:
            return
        folder = self.local(trial)
        remote = f"{self.root.rstrip('/')}/trials/{trial}"
        files = sorted((p for p in folder.rglob("*") if p.is_file()), key=lambda p: p.name == CURVE_FILE)
        try:
            for path in files:
                target = f"{remote}/{path.relative_to(folder).as_posix()}"
                self.fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
                self.fs.put_file(str(path), target)
        except OSError as err:
            raise RunError(f"{self.url(trial)}: cannot write the trial to storage ({err})") from err
