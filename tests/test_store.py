import sqlite3

import pytest

from lit_transfer.metadataset.store import MetaDataset, MetaDatasetError, RunRecord


def _run(task="t1", lr=1e-3, status="ok", epochs=3):
    curve = [{"fidelity": 0.0, "step": 0, "metrics": {"val/acc": 0.0, "val/loss": 3.0}, "seconds": 0.5, "tokens": 0}]
    curve += [
        {
            "fidelity": float(e),
            "step": 10 * e,
            "metrics": {"val/acc": 0.1 * e, "val/loss": 3.0 - 0.2 * e},
            "seconds": 1.0 + e,
            "tokens": 100 * e,
        }
        for e in range(1, epochs + 1)
    ]
    return RunRecord(
        task=task,
        config={"learning_rate": lr, "adapter": "lora", "lora_rank": 8},
        seed=0,
        base_model="m",
        max_epochs=epochs,
        status=status,
        curve=curve,
        message=None if status == "ok" else "boom",
        seconds=4.5,
        tokens=300,
        versions={"torch": "x"},
    )


@pytest.fixture
def store(tmp_path):
    store = MetaDataset(tmp_path / "meta.sqlite", create=True)
    store.add_task("t1", {"size": 100.0, "zero_shot_acc": 0.0})
    store.add_task("t2", {"size": 50.0, "zero_shot_acc": 0.1})
    store.add_run(_run())
    store.add_run(_run(lr=1e-2, status="diverged"))
    store.add_run(_run(task="t2"))
    yield store
    store.close()


def _same(a: MetaDataset, b: MetaDataset, with_all_metrics: bool = True):
    assert a.tasks() == b.tasks()
    ra, rb = list(a.runs()), list(b.runs())
    assert len(ra) == len(rb) == 3
    for x, y in zip(ra, rb, strict=True):
        assert (x.task, x.config, x.status, x.seconds, x.max_epochs) == (
            y.task,
            y.config,
            y.status,
            y.seconds,
            y.max_epochs,
        )
        assert x.metric("val/acc") == pytest.approx(y.metric("val/acc"))
        if with_all_metrics:
            assert x.curve == y.curve and x.message == y.message and x.versions == y.versions


def test_sqlite_round_trip(store, tmp_path):
    store.close()
    reopened = MetaDataset(tmp_path / "meta.sqlite")
    runs = list(reopened.runs())
    assert [r.status for r in runs] == ["ok", "diverged", "ok"]
    assert runs[0].metric() == pytest.approx([0.1, 0.2, 0.3]) and runs[0].final() == pytest.approx(0.3)
    assert runs[1].message == "boom" and len(reopened) == 3
    assert reopened.has_run("t1", runs[0].config_key, 0, "m", 3)
    assert not reopened.has_run("t1", runs[0].config_key, 1, "m", 3)


def test_same_run_replaces_not_duplicates(store):
    store.add_run(_run(status="failed"))
    assert len(store) == 3
    assert sorted(r.status for r in store.runs("t1")) == ["diverged", "failed"]


def test_parquet_round_trip(store, tmp_path):
    folder = store.export_parquet(tmp_path / "pq")
    _same(store, MetaDataset.import_parquet(folder, tmp_path / "copy.sqlite"))


def test_quicktune_csv_round_trip(store, tmp_path):
    folder = store.export_quicktune(tmp_path / "qtt")
    assert {p.name for p in folder.iterdir()} == {"config.csv", "meta.csv", "curve.csv", "cost.csv"}
    header = (folder / "curve.csv").read_text().splitlines()[0]
    assert header == "run_id,1,2,3"
    _same(store, MetaDataset.import_quicktune(folder, tmp_path / "copy.sqlite", base_model="m"), with_all_metrics=False)


def test_bad_records_are_refused(store):
    with pytest.raises(MetaDatasetError, match="status"):
        store.add_run(_run(status="weird"))
    with pytest.raises(MetaDatasetError, match="unknown task 'nope'"):
        store.add_run(_run(task="nope"))
    assert len(store) == 3  # nothing half-written


def test_corrupt_or_foreign_files_give_clear_errors(tmp_path):
    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(b"this is not a database at all" * 100)
    with pytest.raises(MetaDatasetError, match="not an SQLite meta-dataset"):
        MetaDataset(garbage)
    foreign = tmp_path / "foreign.sqlite"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE users (name TEXT)")
    with pytest.raises(MetaDatasetError, match="not a lit_transfer meta-dataset"):
        MetaDataset(foreign)
    with pytest.raises(MetaDatasetError, match="no such meta-dataset"):
        MetaDataset(tmp_path / "missing.sqlite")


def test_newer_schema_is_refused(store, tmp_path):
    store.conn.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    store.close()
    with pytest.raises(MetaDatasetError, match="schema version 99"):
        MetaDataset(tmp_path / "meta.sqlite")


def test_a_bad_schema_version_or_a_folder_is_refused_clearly(store, tmp_path):
    store.conn.execute("UPDATE meta SET value='abc' WHERE key='schema_version'")
    store.close()
    with pytest.raises(MetaDatasetError, match="schema version abc"):
        MetaDataset(tmp_path / "meta.sqlite")
    with pytest.raises(MetaDatasetError, match="a folder, not a meta-dataset file"):
        MetaDataset(tmp_path)


def test_a_meta_dataset_in_a_read_only_folder_opens_read_only(store, tmp_path, monkeypatch):
    import os
    import shutil
    import stat

    runs = [(r.task, r.config_key, r.curve) for r in store.runs()]
    store.close()
    folder = tmp_path / "installed"
    folder.mkdir()
    shutil.copy(tmp_path / "meta.sqlite", folder / "meta.sqlite")
    os.chmod(folder / "meta.sqlite", stat.S_IRUSR)
    os.chmod(folder, stat.S_IRUSR | stat.S_IXUSR)
    if os.geteuid() == 0:  # root may write anywhere; see the folder as an ordinary user would
        monkeypatch.setattr(os, "access", lambda path, mode: mode == os.R_OK)
    try:
        with MetaDataset(folder / "meta.sqlite") as copy:
            assert copy.readonly and [(r.task, r.config_key, r.curve) for r in copy.runs()] == runs
            assert copy.tasks()
        assert sorted(p.name for p in folder.iterdir()) == ["meta.sqlite"]  # no WAL or lock files made
    finally:
        os.chmod(folder, stat.S_IRWXU)


def test_readers_see_committed_runs_while_a_writer_is_open(store, tmp_path):
    reader = MetaDataset(tmp_path / "meta.sqlite")
    with store.transaction():
        store.conn.execute("DELETE FROM curves")
        assert len(next(iter(reader.runs())).curve) == 4  # the reader sees the last committed state
    assert next(iter(reader.runs())).curve == []


def test_a_copy_without_some_tasks_keeps_everything_else(store, tmp_path):
    """An experience that never saw a task: its runs, curves and features are gone, the rest is as it was."""
    copy = store.copy_without(["t2"], tmp_path / "without.sqlite")
    with MetaDataset(copy) as other:
        assert list(other.tasks()) == ["t1"] and other.tasks()["t1"] == store.tasks()["t1"]
        kept = [(r.task, r.config, r.status, r.curve) for r in other.runs()]
        assert kept == [(r.task, r.config, r.status, r.curve) for r in store.runs("t1")]
        assert other.conn.execute("SELECT COUNT(*) FROM curves").fetchone()[0] == sum(
            len(r.curve) for r in other.runs()
        )
        assert other.run_settings() == store.run_settings()
    assert len(store) == 3  # the original is untouched
    with pytest.raises(MetaDatasetError, match="no task"):
        store.copy_without(["nope"], tmp_path / "x.sqlite")
    assert not (tmp_path / "x.sqlite").exists()


def test_a_task_is_its_own_family_unless_told(tmp_path):
    """A user's task named ``my-data`` is not of a family ``my``: only a family given makes tasks kin."""
    with MetaDataset(tmp_path / "own.sqlite", create=True) as store:
        store.add_task("my-data", {"size": 1.0})
        store.add_task("arithmetic-l2-n64", {"size": 1.0}, "arithmetic")
        assert store.families() == {"arithmetic-l2-n64": "arithmetic", "my-data": "my-data"}
        with pytest.raises(MetaDatasetError, match="needs a family name"):
            store.add_task("x", {"size": 1.0}, " ")


def _version_1(path):
    """A file as version 1 wrote it: no family column."""
    with MetaDataset(path, create=True) as store:
        store.add_task("arithmetic-l2-n64", {"size": 1.0}, "arithmetic")
        store.add_task("yes_no", {"size": 2.0}, "yes_no")
        store.add_run(_run(task="yes_no"))
        store.conn.execute("ALTER TABLE tasks DROP COLUMN family")
        store.conn.execute("UPDATE meta SET value='1' WHERE key='schema_version'")
        store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def test_a_version_1_file_is_read_as_it_is_and_migrated_on_its_first_write(tmp_path):
    path = tmp_path / "v1.sqlite"
    _version_1(path)
    before = path.read_bytes()
    with MetaDataset(path) as store:
        assert store.version == 1
        assert store.families() == {"arithmetic-l2-n64": "arithmetic", "yes_no": "yes_no"}
        assert len(list(store.runs())) == 1
    assert path.read_bytes() == before  # reading never changes a file
    with MetaDataset(path) as store:
        store.add_run(_run(task="arithmetic-l2-n64"))
    with MetaDataset(path) as store:
        assert store.version == 2
        assert store.conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone() == ("2",)
        assert dict(store.conn.execute("SELECT task, family FROM tasks").fetchall()) == {
            "arithmetic-l2-n64": "arithmetic", "yes_no": "yes_no",
        }  # fmt: skip
        assert len(list(store.runs())) == 2


def test_a_recorded_task_keeps_the_family_it_was_given(tmp_path):
    from lit_transfer.tune.record import TrialRecorder

    path = tmp_path / "own.sqlite"
    TrialRecorder(path, "my-data", {"size": 1.0}, settings=None, family="entity_type")
    TrialRecorder(path, "my-data", {"size": 1.0}, settings=None)  # resumed without saying it again
    with MetaDataset(path) as store:
        assert store.families() == {"my-data": "entity_type"}
    with pytest.raises(MetaDatasetError, match="recorded in family 'entity_type', not 'dates'"):
        TrialRecorder(path, "my-data", {"size": 1.0}, settings=None, family="dates")


def _damage_the_runs_index(path):
    """Zero the page that holds the runs' unique index: the table still reads, the index no longer matches it."""
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        (root,) = conn.execute("SELECT rootpage FROM sqlite_master WHERE name='sqlite_autoindex_runs_1'").fetchone()
        (size,) = conn.execute("PRAGMA page_size").fetchone()
    with open(path, "r+b") as f:
        f.seek((root - 1) * size)
        f.write(b"\0" * size)


def test_a_damaged_file_is_refused_before_anything_is_written(store, tmp_path):
    """A damaged index let a build miss recorded runs and store them twice; now the first write refuses it."""
    path = store.path
    store.close()
    _damage_the_runs_index(path)
    with MetaDataset(path) as damaged, pytest.raises(MetaDatasetError, match=r"meta.sqlite: damaged .*nothing"):
        damaged.add_run(_run(lr=5e-3))
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM runs NOT INDEXED").fetchone()[0] == 3  # the table, unchanged


def test_a_full_disk_is_said_to_be_full_naming_the_file(store):
    import errno

    (pages,) = store.conn.execute("PRAGMA page_count").fetchone()
    store.conn.execute(f"PRAGMA max_page_count = {pages}")  # as if the disk had no room left for another page
    big = _run(lr=7e-3, epochs=3)
    big.message = "x" * 200_000
    with pytest.raises(OSError, match=r"meta.sqlite: nothing was written, the disk is full") as raised:
        store.add_run(big)
    assert raised.value.errno == errno.ENOSPC
    assert len(list(store.runs())) == 3
