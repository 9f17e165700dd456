"""Every user-input error is one line naming the file (and line) and the problem, with exit code 2; a failed run
exits 1; no traceback without ``--debug``."""

import json
import shutil
import sqlite3
import warnings
from pathlib import Path

import pytest
import yaml
from conftest import write_synthetic_metadataset

from lit_transfer import cli
from lit_transfer.io import FolderLock
from lit_transfer.resources import ASSETS, CONFIGS

GOOD = {"question": "What is 1 plus 1?", "answer": "2"}


def _folder(root, name, train=None, validation=None, test=None):
    """A QA folder; each split is a list of lines (str) or records (dict); None leaves the file out."""
    folder = root / name
    folder.mkdir()
    for split, rows in (("train", train), ("validation", validation), ("test", test)):
        if rows is not None:
            data = b"".join(
                (row if isinstance(row, bytes) else (row if isinstance(row, str) else json.dumps(row)).encode()) + b"\n"
                for row in rows
            )
            (folder / f"{split}.jsonl").write_bytes(data)
    return folder


def _good(root, name, **splits):
    return _folder(root, name, **{"train": [GOOD], "validation": [GOOD], "test": [GOOD], **splits})


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_model):
    root = tmp_path_factory.mktemp("errors")
    meta = str(write_synthetic_metadataset(root / "meta.sqlite", tasks=("t0", "t1"), configs=4, base_model=tiny_model))
    broken = root / "broken"
    broken.mkdir()
    shutil.copy(meta, broken / "meta.sqlite")
    (broken / "meta.perf.ckpt").write_bytes(b"\x80\x02 truncated")
    (broken / "meta.cost.ckpt").write_bytes(b"\x80\x02 truncated")
    schema = root / "schema.sqlite"
    shutil.copy(meta, schema)
    with sqlite3.connect(schema) as conn:
        conn.execute("UPDATE meta SET value='abc' WHERE key='schema_version'")
    foreign = root / "foreign.sqlite"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE users (name TEXT)")
    (root / "garbage.sqlite").write_bytes(b"not a database " * 100)
    (root / "model-no-config").mkdir()
    (root / "a-file.txt").write_text("x")
    return {"root": root, "meta": meta, "tiny": tiny_model}


def tune(w, data, *extra):
    return ["tune", "--data", str(data), "--budget", "1", "--budget_unit", "epochs", "--metadataset", w["meta"],
            "--out", str(w["root"] / "out"), *extra]  # fmt: skip


def fit(w, tmp_path, trainer=None, **model_args):
    config = yaml.safe_load((CONFIGS / "finetune" / "tiny_lora.yaml").read_text())
    config["model"]["init_args"].update({"model": w["tiny"], **model_args})
    config["data"]["init_args"]["data"] = str(_good(tmp_path, "fitdata", train=[GOOD] * 16))
    config["trainer"].update(
        {"max_epochs": 1, "default_root_dir": str(tmp_path / "fit"), "logger": False, **(trainer or {})}
    )
    config["trainer"]["callbacks"] = [
        c for c in config["trainer"]["callbacks"] if "LearningRate" not in c["class_path"]
    ]
    path = tmp_path / "fit.yaml"
    path.write_text(yaml.safe_dump(config))
    return ["fit", "--config", str(path)]


CASES = {
    # data: the file and the line
    "non-utf8": (lambda w, t: tune(w, _good(t, "d", train=[b'{"question": "caf\xe9?", "answer": "x"}'])),
                 "train.jsonl:1: not UTF-8 (byte 0xe9"),
    "lone-surrogate": (lambda w, t: tune(w, _good(t, "d", train=[GOOD, '{"question": "\\ud800?", "answer": "x"}'])),
                       "train.jsonl:2: field 'question' holds an invalid character"),
    "huge-line": (lambda w, t: tune(w, _good(t, "d", validation=[{"question": "q", "answer": "a" * 2_000_000}])),
                  "validation.jsonl:1: line of 2,000,0"),
    "answer-too-long": (lambda w, t: tune(w, _good(t, "d", train=[GOOD, {"question": "q", "answer": "x " * 500_000}])),
                        "train.jsonl:2 'q': answer has"),
    "invalid-json": (lambda w, t: tune(w, _good(t, "d", train=[GOOD, GOOD, "{oops"])), "train.jsonl:3: invalid JSON"),
    "missing-answer": (lambda w, t: tune(w, _good(t, "d", test=[{"question": "q"}])),
                       "test.jsonl:1: missing field 'answer'"),
    "empty-answer": (lambda w, t: tune(w, _good(t, "d", train=[{"question": "q", "answer": " "}])),
                     "train.jsonl:1: field 'answer' must be a non-empty string"),
    "not-an-object": (lambda w, t: tune(w, _good(t, "d", train=["[1, 2]"])), "train.jsonl:1: expected a JSON object"),
    "context-not-text": (lambda w, t: tune(w, _good(t, "d", train=[{**GOOD, "context": 3}])),
                         "train.jsonl:1: field 'context' must be a string"),
    "empty-split": (lambda w, t: tune(w, _good(t, "d", validation=[""])), "validation.jsonl: split is empty"),
    "missing-folder": (lambda w, t: tune(w, t / "nowhere" / "qa"), "no such folder"),
    "no-jsonl": (lambda w, t: tune(w, _folder(t, "d")), "no JSONL splits"),
    "missing-test-split": (lambda w, t: tune(w, _good(t, "d", test=None)), "no 'test' split"),
    "data-is-a-file": (lambda w, t: tune(w, w["root"] / "a-file.txt"), "a-file.txt: a file"),
    # configs and options
    "budget-zero": (lambda w, t: [*tune(w, _good(t, "d"))[:4], "0", *tune(w, _good(t, "e"))[5:]],
                    "budget must be > 0"),
    "budget-not-a-duration": (lambda w, t: ["tune", "--data", str(_good(t, "d")), "--budget", "soon",
                                            "--metadataset", w["meta"]], "not a duration: 'soon'"),
    "unknown-method": (lambda w, t: tune(w, _good(t, "d"), "--method", "grid"), "grid"),
    "unknown-command": (lambda w, t: ["fitt"], "unknown command 'fitt'"),
    "missing-config": (lambda w, t: ["tune", "--config", str(t / "none.yaml")], "none.yaml"),
    "fit-learning-rate-0": (lambda w, t: fit(w, t, learning_rate=0.0), "learning_rate must be > 0"),
    "fit-negative-alpha": (lambda w, t: fit(w, t, lora_alpha=-4.0), "lora_alpha must be > 0"),
    "fit-missing-model": (lambda w, t: fit(w, t, model=str(t / "no" / "model")), "no such model folder"),
    "fit-model-without-config": (lambda w, t: fit(w, t, model=str(w["root"] / "model-no-config")),
                                 "a folder without config.json"),
    # stores and checkpoints
    "store-missing": (lambda w, t: ["metadata", "summary", str(t / "none.sqlite")],
                      "none.sqlite: no such meta-dataset"),
    "store-is-a-folder": (lambda w, t: ["metadata", "summary", str(t)], "a folder, not a meta-dataset file"),
    "store-garbage": (lambda w, t: ["metadata", "summary", str(w["root"] / "garbage.sqlite")],
                      "garbage.sqlite: not an SQLite meta-dataset"),
    "store-schema-abc": (lambda w, t: ["metadata", "summary", str(w["root"] / "schema.sqlite")], "schema version abc"),
    "store-foreign": (lambda w, t: ["metadata", "summary", str(w["root"] / "foreign.sqlite")],
                      "not a lit_transfer meta-dataset"),
    "tune-store-missing": (lambda w, t: [*tune(w, _good(t, "d"))[:-4], "--metadataset", str(t / "x.sqlite")],
                           "x.sqlite: no such meta-dataset"),
    "tune-base-model-missing": (lambda w, t: tune(w, _good(t, "d"), "--base_model", "./gone/model"),
                                "./gone/model: no such model folder"),
    "surrogate-missing": (lambda w, t: ["suggest", "--data", str(_good(t, "d")), "--metadataset",
                                        str(shutil.copy(w["meta"], t / "alone.sqlite"))], "no pretrained surrogate"),
    "surrogate-truncated": (lambda w, t: ["suggest", "--data", str(_good(t, "d")), "--metadataset",
                                          str(w["root"] / "broken" / "meta.sqlite")],
                            "meta.perf.ckpt: not a readable surrogate checkpoint"),
    "recipe-missing": (lambda w, t: ["surrogate", "train", "--metadataset", w["meta"], "--perf_config",
                                     str(t / "r.yaml")], "r.yaml: cannot read the surrogate recipe"),
    "evaluate-unknown-task": (lambda w, t: ["surrogate", "evaluate", "--metadataset", w["meta"], "--tasks", "[t9]"],
                              "no task(s) t9"),
    "tasks-unknown": (lambda w, t: ["metadata", "tasks", "--out", str(t / "x"), "--tasks", "[poetry]"],
                      "unknown task(s) poetry"),
    "tasks-unknown-suite": (lambda w, t: ["metadata", "tasks", "--out", str(t / "x"), "--suite", "v9"], "v9"),
    # a misspelled option keeps its reason; a config's bad key names the config; an output that is a file
    "fit-misspelled-option": (lambda w, t: fit(w, t, lora_rnak=4),
                              "Problem with given class_path 'lit_transfer.finetune.FinetuneModule': Option "
                              "'lora_rnak' is not accepted"),
    "tune-config-unknown-key": (lambda w, t: ["tune", "--config", _yaml(t, {"data": "x", "budgte": 3})],
                                "tune.yaml: Subcommand 'tune' does not accept option 'budgte'"),
    "tune-out-is-a-file": (lambda w, t: tune(w, _good(t, "d"), "--out", str(w["root"] / "a-file.txt")),
                           "a-file.txt: a file, not a folder"),
    # workers, and the user's own experience
    "workers-zero": (lambda w, t: tune(w, _good(t, "d"), "--method", "default", "--workers", "0"),
                     "workers must be >= 1"),
    "record-into-shipped": (lambda w, t: tune(w, _good(t, "d"), "--method", "default", "--record_into",
                                              str(ASSETS / "metadata" / "v2.sqlite")),
                            "the shipped experience is never written"),
    "record-into-a-folder": (lambda w, t: tune(w, _good(t, "d"), "--method", "default", "--out", str(t / "o"),
                                               "--record_into", str(t)),
                             "a folder, not a meta-dataset file"),
    # storage whose backend is not installed (s3fs is not a dependency)
    "storage-backend-missing": (lambda w, t: tune(w, _good(t, "d"), "--method", "default", "--out", str(t / "o"),
                                                  "--storage", "s3://bucket/tune"),
                                "--storage s3://bucket/tune: Install s3fs to access S3"),
    # a damaged row of a store names the file and the run
    "store-bad-curve-row": (lambda w, t: ["metadata", "summary", _damaged_row(w, t)],
                            "bad.sqlite: run 1, curve point 0: not valid JSON"),
    # a task name becomes a folder: it cannot leave tasks_dir (nor be absolute)
    "build-task-escapes": (lambda w, t: ["metadata", "build", "--config", _plan(t, "../../ESCAPED_build")],
                           "task name '../../ESCAPED_build' cannot be used as a file name"),
    "build-task-absolute": (lambda w, t: ["metadata", "build", "--config", _plan(t, "/tmp/ESCAPED_abs")],
                            "task name '/tmp/ESCAPED_abs' cannot be used as a file name"),
}  # fmt: skip


def _damaged_row(w, folder) -> str:
    """A copy of the world's store whose first curve point is not JSON."""
    path = folder / "bad.sqlite"
    shutil.copy(w["meta"], path)
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE curves SET metrics='{bad' WHERE run_id=1 AND fidelity=0")
    return str(path)


def _yaml(folder, content: dict) -> str:
    path = folder / "tune.yaml"
    path.write_text(yaml.safe_dump(content))
    return str(path)


def _plan(folder, task_name: str) -> str:
    """A build plan whose one task has the given name."""
    plan = folder / "plan.yaml"
    plan.write_text(
        f"plan:\n  out: {folder / 'm.sqlite'}\n  tasks_dir: {folder / 'tasks'}\n"
        f"  tasks: [{{name: '{task_name}', family: yes_no, train: 8, validation: 8, test: 8}}]\n"
    )
    return str(plan)


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_clear_line_with_exit_code_2(case, world, tmp_path, capsys):
    make, message = CASES[case]
    with pytest.raises(SystemExit) as exit_info:
        cli.main(make(world, tmp_path))
    err = capsys.readouterr().err
    assert exit_info.value.code == 2, err[-2000:]
    assert "Traceback" not in err
    assert message in err, err[-2000:]
    if "usage:" not in err:  # ours are one line (the parser's usage errors print the usage first, as CLIs do)
        assert len(err.strip().splitlines()) == 1 and err.startswith("error: "), err[-2000:]
    assert not list(tmp_path.parent.parent.glob("ESCAPED*")) and not Path("/tmp/ESCAPED_abs").exists()


def test_a_locked_tune_folder_is_a_clear_error(world, tmp_path, capsys):
    data = _good(tmp_path, "d")
    with FolderLock(world["root"] / "out"), pytest.raises(SystemExit) as exit_info:
        cli.main(tune(world, data))
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "in use by another process" in err and "Traceback" not in err


def test_debug_shows_the_traceback(world, tmp_path):
    with pytest.raises(ValueError, match="budget must be > 0"):
        cli.main(["--debug", *tune(world, _good(tmp_path, "d"))[:4], "0", "--metadataset", world["meta"]])


def test_known_third_party_noise_is_filtered():
    """What a diverged run's metrics warn (torchmetrics drops NaN) says nothing the run's status does not."""
    from lit_transfer.quiet import silence

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        silence()
        warnings.warn("Encountered `nan` values in tensor. Will be removed.", UserWarning, stacklevel=1)
        warnings.warn("something of ours", UserWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == ["something of ours"]


def test_a_diverged_fit_exits_1_with_its_curve_kept(world, tmp_path, capsys):
    args = fit(world, tmp_path, {"gradient_clip_val": None, "max_epochs": 3}, optimizer="sgd", learning_rate=1.0e8)
    with pytest.raises(SystemExit) as exit_info:
        cli.main(args)
    err = capsys.readouterr().err
    assert exit_info.value.code == 1 and "the run ended diverged" in err and "Traceback" not in err
    assert json.loads((tmp_path / "fit" / "curve.json").read_text())["status"] == "diverged"
