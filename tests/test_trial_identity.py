"""A trial is what it was trained on: two tasks sharing one storage never share a trial, a tuning folder never
continues on other data, and two processes never train one trial folder at once."""

import json
import shutil

import pytest
from conftest import write_synthetic_metadataset

from lit_transfer.finetune.run import RunError
from lit_transfer.io import FolderLock
from lit_transfer.tune.commands import tune
from lit_transfer.tune.loop import load_state


@pytest.fixture(scope="module")
def metadataset(tmp_path_factory, tiny_model):
    return str(write_synthetic_metadataset(tmp_path_factory.mktemp("meta") / "m.sqlite", base_model=tiny_model))


@pytest.fixture(scope="module")
def other_qa(tmp_path_factory, qa_dir):
    """Another task: the same splits with every answer changed."""
    other = tmp_path_factory.mktemp("other_qa")
    for path in qa_dir.glob("*.jsonl"):
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        (other / path.name).write_text("".join(json.dumps({**r, "answer": r["answer"] + " x"}) + "\n" for r in rows))
    return other


def _tune(data, out, storage, metadataset, budget=1):
    return tune(str(data), budget, "epochs", "default", metadataset, out=str(out), candidates=0, storage=str(storage))


def test_two_tasks_in_one_storage_train_their_own_trials(tmp_path, qa_dir, other_qa, metadataset):
    storage = tmp_path / "storage"
    first = _tune(qa_dir, tmp_path / "a", storage, metadataset)
    second = _tune(other_qa, tmp_path / "b", storage, metadataset)
    assert first["config"] == second["config"]  # the same (default) config ...
    assert first["adapter"] != second["adapter"]  # ... trained apart: one trial folder per task
    folders = sorted(p.relative_to(storage / "trials") for p in (storage / "trials").glob("*/*"))
    assert len(folders) == 2 and folders[0].name == folders[1].name and folders[0].parent != folders[1].parent
    # the second task trained its epoch (it did not take the first task's)
    assert load_state(tmp_path / "b" / "state.json").history[0].seconds > 0.0
    fingerprints = [json.loads((tmp_path / out / "task.json").read_text())["fingerprint"] for out in "ab"]
    assert fingerprints[0] != fingerprints[1] and set(fingerprints) == {f.parent.name for f in folders}
    assert json.loads((tmp_path / "b" / "task.json").read_text())["data"] == str(other_qa.resolve())


def test_a_tuning_folder_does_not_continue_on_other_data(tmp_path, qa_dir, other_qa, metadataset):
    _tune(qa_dir, tmp_path / "out", tmp_path / "out", metadataset)
    with pytest.raises(ValueError, match=r"this tuning trained on other data or settings .* give another --out"):
        _tune(other_qa, tmp_path / "out", tmp_path / "out", metadataset, budget=2)
    assert len(load_state(tmp_path / "out" / "state.json").history) == 1  # nothing continued
    resumed = _tune(qa_dir, tmp_path / "out", tmp_path / "out", metadataset, budget=2)  # its own data: continues
    assert resumed["steps"] == 2


def test_a_tuning_begun_before_fingerprints_keeps_its_trials(tmp_path, qa_dir, metadataset):
    """A state without task.json: its trials stay where they were named (``trials/<trial id>``)."""
    _tune(qa_dir, tmp_path / "out", tmp_path / "out", metadataset)
    trials = tmp_path / "out" / "trials"
    (fingerprint,) = trials.iterdir()
    for trial in fingerprint.iterdir():
        shutil.move(trial, trials / trial.name)  # the layout before fingerprints
    fingerprint.rmdir()
    (tmp_path / "out" / "task.json").unlink()
    resumed = _tune(qa_dir, tmp_path / "out", tmp_path / "out", metadataset, budget=2)
    assert resumed["steps"] == 2 and [p.name for p in trials.iterdir()] == [resumed["adapter"].split("/")[-3]]


def test_one_trial_folder_is_never_trained_by_two_processes_at_once(tmp_path, qa_dir, metadataset):
    _tune(qa_dir, tmp_path / "out", tmp_path / "out", metadataset)
    (trial,) = (tmp_path / "out" / "trials").glob("*/*")
    with FolderLock(trial, "another tuning"), pytest.raises(RunError, match="being trained by another process"):
        _tune(qa_dir, tmp_path / "out", tmp_path / "out", metadataset, budget=2)
    assert len(load_state(tmp_path / "out" / "state.json").history) == 1


def test_a_step_whose_recording_failed_is_recorded_when_tuning_resumes(tmp_path, qa_dir, metadataset, monkeypatch):
    """The state is saved before the step is recorded into the user's file; if that write fails (a full disk), the
    resumed tune records it first, so the file and the state never disagree for good."""
    import errno

    from lit_transfer.metadataset.store import MetaDataset
    from lit_transfer.tune.record import TrialRecorder

    own = tmp_path / "mine.sqlite"
    record = TrialRecorder.record

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, f"{own}: nothing was written, the disk is full")

    monkeypatch.setattr(TrialRecorder, "record", full_disk)
    with pytest.raises(OSError, match="the disk is full"):
        tune(str(qa_dir), 1, "epochs", "default", metadataset, out=str(tmp_path / "out"), candidates=0,
             record_into=str(own))  # fmt: skip
    assert len(load_state(tmp_path / "out" / "state.json").history) == 1
    with MetaDataset(own) as store:
        assert list(store.runs()) == []  # the step is in the state, not in the file
    monkeypatch.setattr(TrialRecorder, "record", record)
    # resumed with nothing left to train: the step is recorded all the same
    tune(str(qa_dir), 1, "epochs", "default", metadataset, out=str(tmp_path / "out"), candidates=0,
         record_into=str(own))  # fmt: skip
    with MetaDataset(own) as store:
        (run,) = store.runs()
    assert len(run.metric()) == 1 and run.status == "ok"
