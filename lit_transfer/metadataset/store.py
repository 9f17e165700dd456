"""MetaDataset: finetuning runs, their learning curves and costs, and task meta-features, in one SQLite file.

SQLite in WAL mode lets builder workers write while surrogates and summaries read. A run and its curve are
written in one transaction, so a killed writer leaves either the whole run or none of it. Failed runs are kept:
which pipelines diverge on which tasks is information too.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sqlite3
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from lit_transfer.io import temporary_path
from lit_transfer.resources import SHIPPED_METADATASET as SHIPPED_METADATASET  # where it was always imported from
from lit_transfer.space import config_key

SCHEMA_VERSION = 2  # 2: tasks record their family (a version 1 file is read as it is, migrated on its first write)
STATUSES = ("ok", "diverged", "oom", "failed")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tasks (task TEXT PRIMARY KEY, features TEXT NOT NULL, family TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id INTEGER PRIMARY KEY,
    task TEXT NOT NULL REFERENCES tasks(task),
    config_key TEXT NOT NULL,
    config TEXT NOT NULL,
    seed INTEGER NOT NULL,
    base_model TEXT NOT NULL,
    max_epochs INTEGER NOT NULL,
    status TEXT NOT NULL,
    message TEXT,
    seconds REAL NOT NULL,
    tokens INTEGER NOT NULL,
    device TEXT NOT NULL,
    versions TEXT NOT NULL,
    finished_at REAL NOT NULL,
    UNIQUE (task, config_key, seed, base_model, max_epochs)
);
CREATE TABLE IF NOT EXISTS curves (
    run_id INTEGER NOT NULL REFERENCES runs(run_id),
    fidelity REAL NOT NULL,
    step INTEGER NOT NULL,
    metrics TEXT NOT NULL,
    seconds REAL NOT NULL,
    tokens INTEGER NOT NULL,
    PRIMARY KEY (run_id, fidelity)
);
"""


# the experience every command uses by default (built by configs/metadata/v2.yaml); micro.sqlite (v1, 8 tasks) is
# kept for fast tests


class MetaDatasetError(ValueError):
    """A file that is not a (compatible) lit_transfer meta-dataset, or a record that cannot be stored."""


def legacy_family(task: str) -> str:
    """The family of a task of a version 1 file, which did not record it: the synthetic suites' names carry it
    (``arithmetic-l2-n512``), the only source there is."""
    return task.split("-", 1)[0]


@dataclass
class RunRecord:
    """One finetuning run: what was run, how it ended, what it cost, and its curve (one dict per point)."""

    task: str
    config: dict[str, Any]
    seed: int
    base_model: str
    max_epochs: int
    status: str
    curve: list[dict[str, Any]] = field(default_factory=list)
    message: str | None = None
    seconds: float = 0.0
    tokens: int = 0
    device: str = "cpu"
    versions: dict[str, str] = field(default_factory=dict)
    run_id: int | None = None

    @property
    def config_key(self) -> str:
        # the builder looks runs up by PipelineConfig.key(); one definition keeps the two in agreement
        return config_key(self.config)

    def metric(self, name: str = "val/acc") -> list[float | None]:
        """The curve of one metric over fidelities 1..max (the zero-shot point excluded)."""
        return [p["metrics"].get(name) for p in self.curve if p["fidelity"] > 0]

    def final(self, name: str = "val/acc") -> float | None:
        values = self.metric(name)
        return values[-1] if values else None


class MetaDataset:
    """Open (or create) a meta-dataset file. Raises ``MetaDatasetError`` for a corrupt or foreign file."""

    def __init__(self, path: str | Path, create: bool = False, readonly: bool | None = None) -> None:
        self.path = Path(path)
        self._checked = False  # its integrity, before the first write through this connection
        if self.path.is_dir():
            raise MetaDatasetError(f"{self.path}: a folder, not a meta-dataset file (give the .sqlite file)")
        if not self.path.exists():
            if not create:
                raise MetaDatasetError(f"{self.path}: no such meta-dataset")
            self._create()
        # a folder we cannot write (an installed package): WAL files cannot be made there, and nobody writes the
        # file, so it is read as immutable; elsewhere read-only still reads the WAL a writer may be filling
        locked_folder = not os.access(self.path.parent, os.W_OK) or not os.access(self.path, os.W_OK)
        self.readonly = locked_folder if readonly is None else readonly
        try:
            if self.readonly:
                flags = "mode=ro&immutable=1" if locked_folder else "mode=ro"
                uri = f"{self.path.resolve().as_uri()}?{flags}"
                self.conn = sqlite3.connect(uri, uri=True, timeout=60, isolation_level=None)
            else:
                self.conn = sqlite3.connect(self.path, timeout=60, isolation_level=None)
            self._check()
        except sqlite3.DatabaseError as err:
            with contextlib.suppress(Exception):
                self.conn.close()
            if _disk_full(err):
                raise OSError(errno.ENOSPC, f"{self.path}: cannot open it, the disk is full ({err})") from None
            raise MetaDatasetError(f"{self.path}: not an SQLite meta-dataset ({err})") from None

    def _create(self) -> None:
        """Write the schema into a temporary file and rename it into place, so no reader sees an empty file."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = temporary_path(self.path)
        tmp.unlink()  # SQLite creates the file itself
        try:
            conn = sqlite3.connect(tmp, isolation_level=None)
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                version = f"INSERT INTO meta VALUES ('schema_version', '{SCHEMA_VERSION}');"
                conn.executescript(f"BEGIN IMMEDIATE; {_SCHEMA} {version} COMMIT;")
            finally:
                conn.close()
            os.replace(tmp, self.path)
        except (sqlite3.Error, OSError) as err:  # a full disk: nothing half-made stays behind
            for leftover in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
                leftover.unlink(missing_ok=True)
            if _disk_full(err):
                raise OSError(errno.ENOSPC, f"{self.path}: cannot create it, the disk is full ({err})") from None
            if isinstance(err, OSError):
                raise OSError(err.errno, f"{self.path}: cannot create it ({err.strerror or err})") from None
            raise MetaDatasetError(f"{self.path}: cannot create it ({err})") from None

    def _check(self) -> None:
        tables = {r[0] for r in self.conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "meta" not in tables:
            self.conn.close()
            raise MetaDatasetError(f"{self.path}: an SQLite file, but not a lit_transfer meta-dataset")
        row = self.conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        version = None if row is None else row[0]
        if version is None or not str(version).isdigit() or int(version) not in (1, SCHEMA_VERSION):
            self.conn.close()
            raise MetaDatasetError(f"{self.path}: schema version {version}, this lit_transfer reads {SCHEMA_VERSION}")
        self.version = int(version)

    def _before_write(self) -> None:
        """Before the first write through this connection: a damaged file is refused (an index that no longer
        matches its table lets a run recorded once be missed and stored twice), then a version 1 file is
        migrated."""
        if not self._checked:
            try:
                problems = [row[0] for row in self.conn.execute("PRAGMA integrity_check(3)").fetchall()]
            except sqlite3.DatabaseError as err:
                problems = [str(err)]
            if problems != ["ok"]:
                raise MetaDatasetError(
                    f"{self.path}: damaged ({problems[0]}); nothing was written. Restore it from a copy (an index "
                    "alone can be rebuilt with sqlite3's REINDEX)"
                )
            self._checked = True
        self._migrate()

    def _migrate(self) -> None:
        """Before the first write into a version 1 file: version 2 records every task's family (from its name, as
        version 1 implied it), in one transaction. Reading never changes a file."""
        if self.version == SCHEMA_VERSION:
            return
        with self.transaction():
            self.conn.execute("ALTER TABLE tasks ADD COLUMN family TEXT NOT NULL DEFAULT ''")
            for (task,) in self.conn.execute("SELECT task FROM tasks").fetchall():
                self.conn.execute("UPDATE tasks SET family=? WHERE task=?", (legacy_family(task), task))
            self.conn.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION),))
        self.version = SCHEMA_VERSION

    # ------------------------------------------------------------------ run settings
    def run_settings(self) -> dict[str, Any] | None:
        """The settings every run of this meta-dataset was trained with (``RunSettings``), if recorded."""
        row = self.conn.execute("SELECT value FROM meta WHERE key='run_settings'").fetchone()
        return None if row is None else json.loads(row[0])

    def check_run_settings(self, settings: dict[str, Any], ignore: tuple[str, ...] = ()) -> None:
        """Record ``settings`` on first use; afterwards refuse runs trained otherwise (they would not compare)."""
        from lit_transfer.finetune.settings import LEGACY_SETTINGS

        mine = {k: v for k, v in settings.items() if k not in ignore}
        recorded = self.run_settings()
        if recorded is None:
            self._before_write()
            with self.transaction():
                self.conn.execute("INSERT OR REPLACE INTO meta VALUES ('run_settings', ?)", (json.dumps(mine),))
            return
        recorded = {**LEGACY_SETTINGS, **recorded}
        differ = {k: (recorded.get(k), v) for k, v in mine.items() if recorded.get(k) != v}
        if differ:
            what = ", ".join(f"{k}: recorded {a!r}, planned {b!r}" for k, (a, b) in differ.items())
            raise MetaDatasetError(f"{self.path}: its runs were trained with other settings ({what})")

    def transaction(self):
        return _Transaction(self.conn, self.path)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> MetaDataset:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ tasks
    def add_task(self, task: str, features: dict[str, float], family: str | None = None) -> None:
        """Record a task and its meta-features; ``family`` is the kind of task it is, held out together with its
        kin when transfer is evaluated (default: its own family, like no other task)."""
        family = task if family is None else family
        if not family.strip():
            raise MetaDatasetError(f"{self.path}: task {task!r} needs a family name, got {family!r}")
        self._before_write()
        with self.transaction():
            self.conn.execute(
                "INSERT OR REPLACE INTO tasks (task, features, family) VALUES (?, ?, ?)",
                (task, json.dumps(features), family),
            )

    def tasks(self) -> dict[str, dict[str, float]]:
        rows = self.conn.execute("SELECT task, features FROM tasks ORDER BY task")
        return {t: self._json(f, f"task {t}, meta-features") for t, f in rows}

    def families(self) -> dict[str, str]:
        """Each task's family."""
        if self.version == 1:  # not migrated: nothing was written yet
            return {task: legacy_family(task) for task in self.tasks()}
        return dict(self.conn.execute("SELECT task, family FROM tasks ORDER BY task").fetchall())

    # ------------------------------------------------------------------ runs
    def add_run(self, run: RunRecord) -> int:
        """Store a finished run and its curve atomically; a second run with the same identity replaces it."""
        if run.status not in STATUSES:
            raise MetaDatasetError(f"run status must be one of {STATUSES}, got {run.status!r}")
        self._before_write()
        if run.task not in self.tasks():
            raise MetaDatasetError(f"unknown task {run.task!r}: add the task (with its meta-features) first")
        with self.transaction():
            old = self.conn.execute(
                "SELECT run_id FROM runs WHERE task=? AND config_key=? AND seed=? AND base_model=? AND max_epochs=?",
                (run.task, run.config_key, run.seed, run.base_model, run.max_epochs),
            ).fetchone()
            if old is not None:
                self.conn.execute("DELETE FROM curves WHERE run_id=?", old)
                self.conn.execute("DELETE FROM runs WHERE run_id=?", old)
            cursor = self.conn.execute(
                "INSERT INTO runs (task, config_key, config, seed, base_model, max_epochs, status, message, seconds,"
                " tokens, device, versions, finished_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run.task,
                    run.config_key,
                    json.dumps(run.config),
                    run.seed,
                    run.base_model,
                    run.max_epochs,
                    run.status,
                    run.message,
                    run.seconds,
                    run.tokens,
                    run.device,
                    json.dumps(run.versions),
                    time.time(),
                ),
            )
            run_id = cursor.lastrowid
            self.conn.executemany(
                "INSERT INTO curves VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (
                        run_id,
                        p["fidelity"],
                        p.get("step", 0),
                        json.dumps(p["metrics"]),
                        p.get("seconds", 0.0),
                        p.get("tokens", 0),
                    )
                    for p in run.curve
                ],
            )
        run.run_id = run_id
        return run_id

    def has_run(self, task: str, config_key: str, seed: int, base_model: str, max_epochs: int) -> bool:
        return (
            self.conn.execute(
                "SELECT 1 FROM runs WHERE task=? AND config_key=? AND seed=? AND base_model=? AND max_epochs=?",
                (task, config_key, seed, base_model, max_epochs),
            ).fetchone()
            is not None
        )

    def copy_without(self, tasks: Sequence[str], path: str | Path) -> Path:
        """A copy of this meta-dataset at ``path`` without ``tasks`` and their runs (an experience that never saw
        them, for testing transfer to them); written beside ``path`` and renamed into place."""
        known = self.tasks()
        unknown = [t for t in tasks if t not in known]
        if unknown:
            raise MetaDatasetError(f"{self.path}: no task(s) {', '.join(unknown)}")
        path = Path(path)
        partial = temporary_path(path)
        try:
            target = sqlite3.connect(partial, isolation_level=None)
            try:
                self.conn.backup(target)
                marks = ",".join("?" * len(tasks))
                target.executescript("BEGIN IMMEDIATE;")
                target.execute(f"DELETE FROM curves WHERE run_id IN (SELECT run_id FROM runs WHERE task IN ({marks}))",
                               list(tasks))  # fmt: skip
                target.execute(f"DELETE FROM runs WHERE task IN ({marks})", list(tasks))
                target.execute(f"DELETE FROM tasks WHERE task IN ({marks})", list(tasks))
                target.execute("COMMIT")
                target.execute("VACUUM")
            finally:
                target.close()
            os.replace(partial, path)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        return path

    def _read(self, query: Any) -> Any:
        """Run a read; a malformed file is named, not a traceback."""
        try:
            return query()
        except sqlite3.DatabaseError as err:
            raise MetaDatasetError(f"{self.path}: cannot be read ({err})") from None

    def _json(self, text: str, where: str) -> Any:
        """A JSON column; a damaged one is named (file, run or task, column), not a bare JSON message."""
        try:
            return json.loads(text)
        except (TypeError, ValueError) as err:
            raise MetaDatasetError(f"{self.path}: {where}: not valid JSON ({err})") from None

    def runs(self, task: str | None = None) -> Iterator[RunRecord]:
        query = "SELECT * FROM runs" + (" WHERE task=?" if task else "") + " ORDER BY run_id"
        self.conn.row_factory = sqlite3.Row
        try:
            rows = self._read(lambda: self.conn.execute(query, (task,) if task else ()).fetchall())
            points: dict[int, list[dict[str, Any]]] = {}
            for p in self._read(lambda: self.conn.execute("SELECT * FROM curves ORDER BY run_id, fidelity").fetchall()):
                points.setdefault(p["run_id"], []).append(
                    {
                        "fidelity": p["fidelity"],
                        "step": p["step"],
                        "metrics": self._json(p["metrics"], f"run {p['run_id']}, curve point {p['fidelity']:g}"),
                        "seconds": p["seconds"],
                        "tokens": p["tokens"],
                    }
                )
        finally:
            self.conn.row_factory = None
        for r in rows:
            yield RunRecord(
                task=r["task"],
                config=self._json(r["config"], f"run {r['run_id']} ({r['task']}), config"),
                seed=r["seed"],
                base_model=r["base_model"],
                max_epochs=r["max_epochs"],
                status=r["status"],
                curve=points.get(r["run_id"], []),
                message=r["message"],
                seconds=r["seconds"],
                tokens=r["tokens"],
                device=r["device"],
                versions=self._json(r["versions"], f"run {r['run_id']} ({r['task']}), versions"),
                run_id=r["run_id"],
            )

    def __len__(self) -> int:
        return self.conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0]

    # ------------------------------------------------------------------ exchange
    def to_frames(self) -> dict[str, pd.DataFrame]:
        families = self.families()
        tasks = pd.DataFrame(
            [{"task": t, "features": json.dumps(f), "family": families[t]} for t, f in self.tasks().items()]
        )
        runs, curves = [], []
        for r in self.runs():
            runs.append(
                {
                    "run_id": r.run_id,
                    "task": r.task,
                    "config": json.dumps(r.config),
                    "seed": r.seed,
                    "base_model": r.base_model,
                    "max_epochs": r.max_epochs,
                    "status": r.status,
                    "message": r.message,
                    "seconds": r.seconds,
                    "tokens": r.tokens,
                    "device": r.device,
                    "versions": json.dumps(r.versions),
                }
            )
            curves += [{"run_id": r.run_id, **p, "metrics": json.dumps(p["metrics"])} for p in r.curve]
        return {"tasks": tasks, "runs": pd.DataFrame(runs), "curves": pd.DataFrame(curves)}

    def export_parquet(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for name, frame in self.to_frames().items():
            frame.to_parquet(folder / f"{name}.parquet", index=False)
        return folder

    @classmethod
    def import_parquet(cls, folder: str | Path, path: str | Path) -> MetaDataset:
        folder = Path(folder)
        frames = {n: pd.read_parquet(folder / f"{n}.parquet") for n in ("tasks", "runs", "curves")}
        store = cls(path, create=True)
        for row in frames["tasks"].itertuples():  # an export of a version 1 file has no family column
            family = getattr(row, "family", None) or legacy_family(row.task)
            store.add_task(row.task, json.loads(row.features), family)
        points: dict[int, list] = {}
        for p in frames["curves"].itertuples():
            points.setdefault(p.run_id, []).append(
                {
                    "fidelity": p.fidelity,
                    "step": int(p.step),
                    "metrics": json.loads(p.metrics),
                    "seconds": p.seconds,
                    "tokens": int(p.tokens),
                }
            )
        for r in frames["runs"].itertuples():
            store.add_run(
                RunRecord(
                    task=r.task,
                    config=json.loads(r.config),
                    seed=int(r.seed),
                    base_model=r.base_model,
                    max_epochs=int(r.max_epochs),
                    status=r.status,
                    curve=points.get(r.run_id, []),
                    message=None if pd.isna(r.message) else r.message,
                    seconds=float(r.seconds),
                    tokens=int(r.tokens),
                    device=r.device,
                    versions=json.loads(r.versions),
                )
            )
        return store

    def export_quicktune(self, folder: str | Path, metric: str = "val/acc") -> Path:
        """quicktunetool's layout: one row per run in ``config.csv``, ``meta.csv`` (task meta-features),
        ``curve.csv`` (metric at epochs 1..E) and ``cost.csv`` (seconds)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        tasks = self.tasks()
        runs = list(self.runs())
        index = pd.Index([r.run_id for r in runs], name="run_id")
        config = pd.DataFrame([{"task": r.task, "seed": r.seed, "status": r.status, **r.config} for r in runs], index)
        meta = pd.DataFrame([tasks[r.task] for r in runs], index)
        width = max((r.max_epochs for r in runs), default=0)
        curve = pd.DataFrame(
            [r.metric(metric) + [None] * (width - len(r.metric(metric))) for r in runs],
            index,
            columns=[str(e) for e in range(1, width + 1)],
        )
        cost = pd.DataFrame({"cost": [r.seconds for r in runs]}, index)
        for name, frame in {"config": config, "meta": meta, "curve": curve, "cost": cost}.items():
            frame.to_csv(folder / f"{name}.csv")
        return folder

    @classmethod
    def import_quicktune(
        cls, folder: str | Path, path: str | Path, metric: str = "val/acc", base_model: str = "unknown"
    ) -> MetaDataset:
        folder = Path(folder)
        config = pd.read_csv(folder / "config.csv", index_col=0)
        meta = pd.read_csv(folder / "meta.csv", index_col=0)
        curve = pd.read_csv(folder / "curve.csv", index_col=0)
        cost = pd.read_csv(folder / "cost.csv", index_col=0)
        store = cls(path, create=True)
        for task in config["task"].unique():
            first = config.index[config["task"] == task][0]
            store.add_task(str(task), {k: float(v) for k, v in meta.loc[first].items()})
        hp_columns = [c for c in config.columns if c not in ("task", "seed", "status")]
        for run_id, row in config.iterrows():
            values = curve.loc[run_id].tolist()
            points = [
                {"fidelity": float(e), "metrics": {metric: float(v)}}
                for e, v in zip(curve.columns, values, strict=True)
                if not pd.isna(v)
            ]
            store.add_run(
                RunRecord(
                    task=str(row["task"]),
                    config={c: _native(row[c]) for c in hp_columns},
                    seed=int(row.get("seed", 0)),
                    base_model=base_model,
                    max_epochs=len(curve.columns),
                    status=str(row.get("status", "ok")),
                    curve=points,
                    seconds=float(cost.loc[run_id, "cost"]),
                )
            )
        return store


def _native(value: Any) -> Any:
    """pandas gives numpy scalars; configs hold plain Python values."""
    return value.item() if hasattr(value, "item") else value


def _disk_full(err: BaseException) -> bool:
    return isinstance(err, sqlite3.OperationalError) and "disk is full" in str(err)


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``: one writer at a time, all or nothing. A full disk is said as such,
    naming the file."""

    def __init__(self, conn: sqlite3.Connection, path: Path | None = None) -> None:
        self.conn, self.path = conn, path

    def __enter__(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            with contextlib.suppress(sqlite3.Error):  # SQLite may have rolled back already (a full disk does)
                self.conn.execute("ROLLBACK")
            if _disk_full(exc):
                raise OSError(errno.ENOSPC, f"{self.path}: nothing was written, the disk is full ({exc})") from None
            return
        try:
            self.conn.execute("COMMIT")
        except sqlite3.OperationalError as err:
            if not _disk_full(err):
                raise
            with contextlib.suppress(sqlite3.Error):
                self.conn.execute("ROLLBACK")
            raise OSError(errno.ENOSPC, f"{self.path}: nothing was written, the disk is full ({err})") from None
