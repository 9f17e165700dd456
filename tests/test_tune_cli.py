"""``suggest`` and ``tune`` with real finetuning, through ``python -m lit_transfer``, on the tiny model."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
import pytest
import torch
import yaml
from conftest import fit, write_synthetic_metadataset

from lit_transfer.space import SearchSpace
from lit_transfer.surrogate import CostSurrogate, ExperienceSurrogate, MetaDataModule, PerformanceSurrogate
from lit_transfer.surrogate.pretrained import pretrained_paths, save_weights
from lit_transfer.tune.loop import load_state

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def metadataset(tmp_path_factory, tiny_model):
    """A synthetic meta-dataset recorded for the tiny model, with its pretrained surrogates beside it."""
    path = write_synthetic_metadataset(tmp_path_factory.mktemp("meta") / "meta.sqlite", base_model=tiny_model)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    L.seed_everything(0, verbose=False)
    paths = pretrained_paths(path)
    experience = fit(ExperienceSurrogate(variance_steps=100), MetaDataModule(str(path)), {"max_epochs": 1})
    save_weights(experience, paths["performance"])
    save_weights(fit(CostSurrogate(), MetaDataModule(str(path), target="cost"), {"max_epochs": 20}), paths["cost"])
    refit = fit(PerformanceSurrogate(), MetaDataModule(str(path), batch_size=64), {"max_epochs": 3})
    save_weights(refit, paths["refit"])
    torch.set_num_threads(threads)
    return str(path)


def run_cli(*args, cwd=REPO, **kwargs):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "lit_transfer", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=900,
        **kwargs,
    )  # fmt: skip


# third-party noise that must never reach a user of these commands (and the Trainer banners suggest must not build)
NOISE = ("Warning", "warn(", "Tip:", "LeafSpec", "gemm_4bit", "kernels-community", "Loading weights", "it/s]",
         "GPU available", "TPU available", "silently incorrect", "litlogger")  # fmt: skip


def assert_quiet(*outputs):
    for line in "\n".join(outputs).splitlines():
        assert not any(noise in line for noise in NOISE), line


def test_help_is_quiet():
    for args in (["--help"], ["tune", "--help"], ["suggest", "--help"], ["metadata", "build", "--help"]):
        result = run_cli(*args)
        assert result.returncode == 0 and result.stderr == "", result.stderr[-2000:]
        assert_quiet(result.stdout)


@pytest.mark.slow
def test_suggest_prints_ranked_configs_and_writes_fit_yaml(metadataset, qa_dir, tmp_path):
    out = tmp_path / "suggest"
    result = run_cli(
        "suggest", "--data", str(qa_dir), "--top", "3", "--budget", "5h", "--metadataset", metadataset,
        "--out", str(out), "--candidates", "64",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert_quiet(result.stdout, result.stderr)
    assert "val/acc ± 95%" in result.stdout  # ± is the 95% interval wherever a prediction is printed
    rows = [line for line in result.stdout.splitlines() if line.strip()[:1].isdigit()]
    assert len(rows) == 3
    predicted = [float(r.split()[1]) for r in rows]
    assert predicted == sorted(predicted, reverse=True)
    config = yaml.safe_load((out / "suggestion_1.yaml").read_text())
    assert config["model"]["class_path"] == "lit_transfer.finetune.FinetuneModule"
    assert config["data"]["init_args"]["data"] == str(qa_dir)
    printed = run_cli("fit", "--config", str(out / "suggestion_1.yaml"), "--print_config")
    assert printed.returncode == 0, printed.stderr[-2000:]  # a ready fit config
    too_little = run_cli("suggest", "--data", str(qa_dir), "--budget", "1s", "--metadataset", metadataset)
    assert too_little.returncode != 0 and "no config is predicted to finish within 1s" in too_little.stderr


@pytest.mark.slow
def test_tune_runs_real_trials_resumes_after_sigkill_and_tests_the_choice(metadataset, qa_dir, tmp_path):
    """Two worker processes, so the driver is killed with steps in flight: the rerun runs them first."""
    out = tmp_path / "tune"
    args = [
        "tune", "--config", str(REPO / "configs/tune/transfer.yaml"), "--data", str(qa_dir), "--budget", "6",
        "--budget_unit", "epochs", "--metadataset", metadataset, "--out", str(out), "--candidates", "16",
        "--workers", "2", "--threads", "1",
    ]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "lit_transfer", *args], cwd=REPO, env=env, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    state = out / "state.json"
    deadline = time.time() + 600
    while time.time() < deadline and not (state.exists() and len(load_state(state).history) >= 2):
        assert process.poll() is None, process.stderr.read().decode()[-3000:]
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)  # mid-tuning
    process.wait()
    before = load_state(state).history
    in_flight = load_state(state).in_flight
    assert 2 <= len(before) < 6 and in_flight

    result = run_cli(*args)
    assert result.returncode == 0, result.stderr[-3000:]
    after = load_state(state).history
    assert len(after) == 6 and after[: len(before)] == before  # nothing finished is lost or repeated
    assert len({(s.config_key, s.fidelity) for s in after}) == 6
    steps = {}
    for step in after:  # each config advanced one epoch at a time, continuing its run
        assert step.fidelity == steps.get(step.config_key, 0) + 1
        steps[step.config_key] = step.fidelity
    summary = json.loads((out / "result.json").read_text())
    assert summary["method"] == "transfer" and summary["steps"] == 6
    assert 0.0 <= summary["test"]["test/acc"] <= 1.0
    assert (Path(summary["adapter"]) / "adapter_config.json").exists()
    # the epoch whose checkpoint was tested: the chosen config's best epoch by val/acc
    trial_curve = json.loads((Path(summary["adapter"]).parents[1] / "curve.json").read_text())
    accs = [p["metrics"]["val/acc"] for p in trial_curve["points"] if p["fidelity"] > 0]
    assert 1 <= summary["tested_epoch"] <= summary["epochs"] and accs[summary["tested_epoch"] - 1] == max(accs)
    # what was chosen and why: predicted before any trial against observed
    assert re.match(r"predicted val/acc \d\.\d{3} ± \d\.\d{3} \(95%\) before any trial, observed", summary["why"])
    assert f"why this config: {summary['why']}" in result.stdout
    assert list((out / "tensorboard").rglob("events.out.tfevents.*"))


@pytest.mark.slow
def test_a_corrupt_checkpoint_stops_tune_and_changes_nothing(metadataset, qa_dir, tmp_path):
    """Truncate the incumbent's last.ckpt and continue: the step is retried once, then tune exits 1 naming the
    file, and the recorded history and curve stay as they were."""
    from lit_transfer.io import FolderLock

    out = tmp_path / "tune"
    args = [
        "tune", "--config", str(REPO / "configs/tune/transfer.yaml"), "--data", str(qa_dir), "--budget_unit",
        "epochs", "--metadataset", metadataset, "--out", str(out), "--method", "default",
    ]  # fmt: skip
    first = run_cli(*args, "--budget", "2")
    assert first.returncode == 0, first.stderr[-3000:]
    history = load_state(out / "state.json").history
    (trial,) = (out / "trials").glob("*/*")  # <data fingerprint>/<trial id>
    curve = (trial / "curve.json").read_text()
    last = trial / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[:200])
    failed = run_cli(*args, "--budget", "3")
    assert failed.returncode == 1, failed.stderr[-3000:]
    assert str(last) in failed.stderr and "Traceback" not in failed.stderr
    assert load_state(out / "state.json").history == history and (trial / "curve.json").read_text() == curve
    with FolderLock(out):  # another process holds the folder: a clear error at once
        locked = run_cli(*args, "--budget", "3")
    assert locked.returncode == 2 and "in use by another process" in locked.stderr
    # a missing last.ckpt (its curve says 2 epochs) is no licence to retrain from scratch: the same stop
    last.unlink()
    missing = run_cli(*args, "--budget", "3")
    assert missing.returncode == 1 and f"{last}: missing" in missing.stderr, missing.stderr[-3000:]
    assert load_state(out / "state.json").history == history and (trial / "curve.json").read_text() == curve


@pytest.mark.slow
def test_the_readme_demo_reproduces_its_record_on_a_family_the_experience_never_met(tmp_path):
    """The main job as the README runs it: a new task of a family left out of the shipped experience, surrogates
    meta-trained on what is left, real trials on an epoch budget, a tested choice and the default config trained as
    long. Budget in epochs and fixed seeds: the outcome is the one recorded in assets/evaluate/demo.json."""
    from lit_transfer.metadataset.store import MetaDataset

    task = "entity_type-l1-n64"
    written = run_cli(
        "metadata", "tasks", "--out", "runs/demo/tasks", "--suite", "v2", "--tasks", f"[{task}]", "--seed", "1",
        cwd=tmp_path,
    )  # fmt: skip
    assert written.returncode == 0, written.stderr[-3000:]
    bad = run_cli("metadata", "tasks", "--out", str(tmp_path / "x"), "--tasks", "[poetry]")
    assert bad.returncode != 0 and "unknown task(s) poetry" in bad.stderr
    copy = ["metadata", "copy", "--out", "runs/demo/experience.sqlite", "--without_families", "[entity_type]"]
    copied = run_cli(*copy, cwd=tmp_path)
    assert copied.returncode == 0, copied.stderr[-3000:]
    with MetaDataset(tmp_path / "runs/demo/experience.sqlite") as experience:
        assert len(experience.tasks()) == 30 and "entity_type" not in experience.families().values()
    assert "kept" in run_cli(*copy, cwd=tmp_path).stdout  # the README's chain can be rerun
    other = run_cli(*copy[:-1], "[sentence]", cwd=tmp_path)
    assert other.returncode == 2 and "holds other tasks" in other.stderr
    for only in ("performance", "cost"):  # what Transfer needs (the README's command also trains the refit GP)
        trained = run_cli(
            "surrogate", "train", "--metadataset", "runs/demo/experience.sqlite", "--only", only, cwd=tmp_path
        )  # fmt: skip
        assert trained.returncode == 0, trained.stderr[-3000:]
    result = run_cli("tune", "--config", "configs/tune/demo.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert len([line for line in result.stdout.splitlines() if line.startswith("spent")]) == 24  # one per step
    summary = json.loads((tmp_path / "runs/demo/tune/result.json").read_text())
    recorded = json.loads((REPO / "assets/evaluate/demo.json").read_text())
    assert summary["default"]["config"] == dict(SearchSpace.from_yaml().default().values)
    for key in ("config", "epochs", "steps", "val", "why"):
        assert summary[key] == recorded[key], key
    assert summary["test"]["test/acc"] == recorded["test"]["test/acc"]
    assert summary["default"]["test"]["test/acc"] == recorded["default"]["test"]["test/acc"]
    assert (tmp_path / summary["adapter"] / "adapter_model.safetensors").exists()
    default = summary["default"]
    assert f"the default config in {default['epochs']} epochs: {default['test']['test/acc']:.3f}" in result.stdout
    assert "Warning" not in result.stderr and "Be aware" not in result.stdout + result.stderr  # quiet


@pytest.mark.slow
def test_tune_records_its_trials_into_the_users_experience_and_surrogates_learn_from_it(metadataset, qa_dir, tmp_path):
    from conftest import short_recipe

    from lit_transfer.metadataset.store import MetaDataset
    from lit_transfer.resources import ASSETS
    from lit_transfer.tune.record import check_own

    own = tmp_path / "mine.sqlite"
    args = [
        "tune", "--config", str(REPO / "configs/tune/transfer.yaml"), "--data", str(qa_dir), "--budget_unit",
        "epochs", "--metadataset", metadataset, "--out", str(tmp_path / "tune"), "--method", "default",
        "--record_into", str(own), "--task_name", "my_qa",
    ]  # fmt: skip
    result = run_cli(*args, "--budget", "2")  # two steps of one config: its record is replaced as it grows
    assert result.returncode == 0, result.stderr[-3000:]
    with MetaDataset(own) as store:
        (run,) = list(store.runs())
        assert "my_qa" in store.tasks() and run.task == "my_qa" and run.status == "ok"
        assert {"probe_loss_ratio", "probe_token_acc"} <= set(store.tasks()["my_qa"])  # every feature, as built
        assert max(p["fidelity"] for p in run.curve) == 2 and run.seconds > 0
    trained = run_cli(
        "surrogate", "train", "--metadataset", metadataset, "--own", str(own),
        "--perf_config", short_recipe(tmp_path, "performance", 1), "--cost_config", short_recipe(tmp_path, "cost", 2),
        "--refit_config", short_recipe(tmp_path, "refit", 1),
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert "warn" not in trained.stderr.lower(), trained.stderr[-3000:]  # quiet: no third-party warnings
    assert all((tmp_path / f"mine.{name}.ckpt").exists() for name in ("perf", "cost", "refit"))
    suggested = run_cli(
        "suggest", "--data", str(qa_dir), "--metadataset", metadataset, "--own", str(own), "--top", "2",
        "--candidates", "8", "--out", str(tmp_path / "suggest"),
    )  # fmt: skip
    assert suggested.returncode == 0, suggested.stderr[-3000:]
    with pytest.raises(ValueError, match="the shipped experience is never written"):
        check_own(ASSETS / "metadata" / "mine.sqlite")


def test_the_probe_trains_only_where_a_surrogate_reads_it(metadataset, qa_dir, tiny_model, tmp_path, monkeypatch):
    """The probe features train a copy of the base model: ``suggest`` computes them only when its surrogates read
    them (the others are the same either way); a task recorded into the user's experience has them all."""
    from lit_transfer.metadataset import features
    from lit_transfer.tune import commands

    with_probe = features.task_features(str(qa_dir), tiny_model)
    without = features.task_features(str(qa_dir), tiny_model, probe=False)
    assert without == {k: v for k, v in with_probe.items() if k not in features.PROBE_FEATURES}
    assert set(features.PROBE_FEATURES) <= set(with_probe)
    probes = []
    probe = features._probe
    monkeypatch.setattr(features, "_probe", lambda *args: probes.append(args) or probe(*args))
    picks = commands.suggest(str(qa_dir), top=1, metadataset=metadataset, out=str(tmp_path / "s"), candidates=8)
    assert len(picks) == 1 and probes == []
    surrogates = commands.experience_surrogates(metadataset)
    assert not commands.reads_probe(surrogates) and not commands.reads_probe(None)
    surrogates.cost.encoding.task_features = [*surrogates.cost.encoding.task_features, "probe_token_acc"]
    assert commands.reads_probe(surrogates)


def test_a_hard_link_to_a_shipped_file_is_refused_like_the_file(tmp_path, monkeypatch):
    """A hard link has a path of its own outside the package: the file's identity (device, inode) gives it away."""
    import os

    from lit_transfer.tune import record

    shipped = tmp_path / "package" / "assets" / "metadata"
    shipped.mkdir(parents=True)
    (shipped / "v2.sqlite").write_bytes(b"experience")
    monkeypatch.setattr(record, "ASSETS", tmp_path / "package" / "assets")
    link = tmp_path / "mine.sqlite"
    os.link(shipped / "v2.sqlite", link)
    with pytest.raises(ValueError, match="the shipped experience is never written"):
        record.check_own(link)
    (tmp_path / "other.sqlite").write_bytes(b"experience")  # same bytes, another file: the user's own
    assert record.check_own(tmp_path / "other.sqlite") == (tmp_path / "other.sqlite").resolve()


@pytest.mark.slow
def test_a_killed_tune_with_two_workers_resumes_at_once(metadataset, qa_dir, tmp_path):
    """SIGKILL the driver of ``tune --workers 2`` (its workers are not signalled): the workers neither hold the
    folder's lock nor outlive it, so the same command resumes at once, saying whose lock it took over."""
    out = tmp_path / "tune"
    args = [
        "tune", "--data", str(qa_dir), "--budget", "6", "--budget_unit", "epochs", "--metadataset", metadataset,
        "--out", str(out), "--method", "random", "--candidates", "8", "--workers", "2", "--threads", "1",
    ]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "lit_transfer", *args], cwd=REPO, env=env, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    state = out / "state.json"
    deadline = time.time() + 600
    while time.time() < deadline and not (state.exists() and load_state(state).history):
        assert process.poll() is None, process.stderr.read().decode()[-3000:]
        time.sleep(0.2)
    os.kill(process.pid, signal.SIGKILL)  # the driver only
    process.wait()
    resumed = run_cli(*args)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"taking over the lock of process {process.pid}" in resumed.stderr
    assert len(load_state(state).history) == 6
