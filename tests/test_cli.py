"""The README's finetuning command, end to end, through ``python -m lit_transfer``."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from peft import PeftConfig

from lit_transfer import trainer_help

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "finetune" / "tiny_lora.yaml"


def run_cli(*args, cwd, **env):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", **env}
    return subprocess.run(
        [sys.executable, "-m", "lit_transfer", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


def test_help_and_print_config(tmp_path):
    helped = run_cli("fit", "--help", cwd=REPO, XDG_CACHE_HOME=str(tmp_path))
    assert helped.returncode == 0 and "--ckpt_path" in helped.stdout
    assert helped.stdout.startswith("usage: python -m lit_transfer [options] fit")
    printed = run_cli("fit", "--config", str(CONFIG), "--print_config", cwd=REPO)
    assert printed.returncode == 0, printed.stderr
    config = yaml.safe_load(printed.stdout)
    assert config["model"]["init_args"]["lora_rank"] == 8
    assert config["model"]["init_args"]["model"] == "assets/models/tiny-phi3"


def test_commands_print_no_third_party_noise(tmp_path):
    """Libraries that log on import (bitsandbytes on a CPU with AVX-512 BF16) are silenced before they load."""
    result = run_cli("--help", cwd=tmp_path)
    assert result.returncode == 0 and result.stdout.startswith("usage:")
    assert result.stderr == ""
    printed = run_cli("fit", "--config", str(CONFIG), "--print_config", cwd=REPO)
    assert printed.returncode == 0 and printed.stderr == ""


HEAVY = ("torch", "lightning", "transformers", "peft")
HELP_IMPORTS = """
import sys
from lit_transfer.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print("imported:", ",".join(sorted(name for name in {heavy!r} if name in sys.modules)))
"""


HELPED = [[], ["metadata", "build"], ["metadata", "summary"], ["surrogate", "train"], ["surrogate", "evaluate"],
          ["suggest"], ["tune"], ["evaluate"]]  # fmt: skip


@pytest.mark.parametrize(
    "command",
    HELPED,
    ids=lambda c: " ".join(c) or "top",
)
def test_help_loads_no_training_library(command):
    """``--help`` of every command but the Trainer ones stays fast because it imports neither torch nor Lightning
    (measured in seconds by tools/bench_help.py)."""
    code = HELP_IMPORTS.format(heavy=HEAVY)
    result = subprocess.run(
        [sys.executable, "-c", code, *command, "--help"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "usage:" in result.stdout
    assert result.stdout.splitlines()[-1] == "imported: "


def test_trainer_help_is_kept_and_shown_again_without_lightning(tmp_path):
    """``fit --help`` lists Lightning's options, which takes importing Lightning once; then the kept text is shown
    without it, and anything the text depends on (here the terminal's width) makes it afresh."""
    code = HELP_IMPORTS.format(heavy=HEAVY)

    def helped(**env):
        environment = {**os.environ, "XDG_CACHE_HOME": str(tmp_path), "COLUMNS": "100", **env}
        result = subprocess.run([sys.executable, "-c", code, "fit", "--help"], cwd=REPO, env=environment,
                                capture_output=True, text=True, timeout=300)  # fmt: skip
        assert result.returncode == 0, result.stderr
        *text, imported = result.stdout.splitlines()
        return "\n".join(text), imported.removeprefix("imported: ").split(",")

    first, imported = helped()
    assert "--trainer.max_epochs" in first and "lightning" in imported
    again, imported = helped()
    assert again == first and imported == [""]
    wider, imported = helped(COLUMNS="160")
    assert "lightning" in imported and wider != first and "--trainer.max_epochs" in wider


def test_a_kept_help_text_changes_with_the_code_it_lists(tmp_path):
    (tmp_path / "module.py").write_text("x = 1\n")
    before = trainer_help.key(["fit", "--help"], "lit-transfer", package=tmp_path)
    assert trainer_help.key(["fit", "--help"], "lit-transfer", package=tmp_path) == before
    assert trainer_help.key(["validate", "--help"], "lit-transfer", package=tmp_path) != before
    assert trainer_help.key(["fit", "--help"], "python -m lit_transfer", package=tmp_path) != before
    (tmp_path / "module.py").write_text("x = 2\n")
    assert trainer_help.key(["fit", "--help"], "lit-transfer", package=tmp_path) != before
    assert trainer_help.kept(["fit", "--help"]) and trainer_help.kept(["test", "-h"])
    assert not trainer_help.kept(["fit", "--config", "x.yaml", "--help"])


def test_unknown_command_is_named(tmp_path):
    result = run_cli("fitt", cwd=REPO)
    assert result.returncode != 0 and "unknown command 'fitt'" in result.stderr


@pytest.mark.slow
def test_tiny_fit_end_to_end_then_continue(tmp_path):
    (tmp_path / "assets").symlink_to(REPO / "assets")
    first = run_cli("fit", "--config", str(CONFIG), cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    run_dir = tmp_path / "runs" / "tiny_lora"
    curve = json.loads((run_dir / "curve.json").read_text())
    assert curve["status"] == "ok"
    assert [p["fidelity"] for p in curve["points"]] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert curve["points"][-1]["metrics"]["val/loss"] < curve["points"][0]["metrics"]["val/loss"]
    assert list((run_dir / "tensorboard").rglob("events.out.tfevents.*"))
    for name in ("best", "last"):
        assert (run_dir / "checkpoints" / f"{name}.ckpt").exists()
        assert PeftConfig.from_pretrained(str(run_dir / "checkpoints" / name)).r == 8

    # freeze-thaw from the command line: continue the same run to 6 epochs
    more = run_cli(
        "fit",
        "--config",
        str(CONFIG),
        "--trainer.max_epochs",
        "6",
        "--ckpt_path",
        "runs/tiny_lora/checkpoints/last.ckpt",
        cwd=tmp_path,
    )
    assert more.returncode == 0, more.stderr[-3000:]
    continued = json.loads((run_dir / "curve.json").read_text())
    assert [p["fidelity"] for p in continued["points"]] == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    assert continued["points"][:5] == curve["points"]

    # resuming a run that has no epochs left trains nothing and leaves its curve finished, not "running"
    again = run_cli(
        "fit", "--config", str(CONFIG), "--trainer.max_epochs", "6",
        "--ckpt_path", "runs/tiny_lora/checkpoints/last.ckpt", cwd=tmp_path,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr[-3000:]
    unchanged = json.loads((run_dir / "curve.json").read_text())
    assert unchanged["status"] == "ok" and unchanged["points"] == continued["points"]


def test_every_command_says_what_it_does_in_one_whole_sentence():
    """The first line of a command's docstring is its summary in ``--help``: a sentence cut in two reads as broken."""
    from lit_transfer.cli import COMMANDS

    functions = [f for entry in COMMANDS.values() for f in (entry.values() if isinstance(entry, dict) else [entry])]
    for function in functions:
        first = function.__doc__.strip().splitlines()[0]
        assert first.endswith("."), (function.__name__, first)


def test_the_lit_transfer_command_is_installed_and_names_itself():
    import shutil
    from importlib.metadata import entry_points

    (script,) = [e for e in entry_points(group="console_scripts") if e.name == "lit-transfer"]
    assert script.value == "lit_transfer.__main__:main"
    result = subprocess.run([shutil.which("lit-transfer"), "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.startswith("usage: lit-transfer ")
    suggest = subprocess.run([shutil.which("lit-transfer"), "suggest", "--help"], capture_output=True, text=True,
                             timeout=120)  # fmt: skip
    assert suggest.returncode == 0 and "usage: lit-transfer" in suggest.stdout and "__main__" not in suggest.stdout


class _Payload:
    """What a crafted checkpoint carries: unpickling it would create ``marker``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


@pytest.mark.parametrize("where", ["local", "remote"])
def test_a_checkpoint_that_would_run_code_is_refused_in_one_line(where, tmp_path):
    """Every checkpoint the Trainer commands load, a file or a URL, is loaded as plain weights only: a crafted one
    runs nothing and is refused naming it (exit code 2). A URL served on 127.0.0.1, for the length of the test."""
    import functools
    import http.server
    import threading

    import torch

    marker = tmp_path / "PWNED"
    (tmp_path / "srv").mkdir()
    torch.save({"state_dict": {}, "payload": _Payload(marker)}, tmp_path / "srv" / "x.ckpt")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / "srv"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        path = (
            f"http://127.0.0.1:{server.server_address[1]}/x.ckpt" if where == "remote" else tmp_path / "srv" / "x.ckpt"
        )
        result = run_cli("validate", "--config", str(CONFIG), "--ckpt_path", str(path), cwd=REPO)
    finally:
        server.shutdown()
        thread.join(timeout=10)
    assert result.returncode == 2, result.stderr[-3000:]
    assert not marker.exists()
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}: not a checkpoint of plain weights"), lines


def test_a_failed_step_is_printed_as_failed_with_its_reason(tmp_path, monkeypatch, capsys):
    """A step whose worker was lost twice scored nothing: the progress line says it failed and why, not
    'val/acc 0.000 ... step 0.0 s' as if it had run."""
    from lit_transfer import cli
    from lit_transfer.tune import commands
    from lit_transfer.tune.loop import Step

    def fake_tune(*args, on_step=None, **kwargs):
        on_step(Step("k", 2, 0.0, 0.0, 3.0, 0.41, 5.0, status="failed", message="its worker was lost, twice"))
        return {"method": "transfer", "steps": 1, "spent": 3.0, "config": None}

    monkeypatch.setattr(commands, "tune", fake_tune)
    cli.tune(str(tmp_path), 3, budget_unit="epochs", out=str(tmp_path / "out"))
    lines = [line for line in capsys.readouterr().out.splitlines() if "epoch 2" in line]
    assert len(lines) == 1 and lines[0].endswith("| failed: its worker was lost, twice (best 0.410)")


def test_one_command_tree_takes_flags_configs_and_paths_as_given(tmp_path, monkeypatch):
    """Nothing rewrites the command line: the tree itself takes booleans as flags (or with a value), ``--debug``
    anywhere, ``metadata summary PATH``, and a packaged ``--config`` from any folder."""
    from lit_transfer.cli import command_tree

    monkeypatch.chdir(tmp_path)  # no configs/ here: the packaged ones are found
    tree = command_tree()
    summary = lambda *a: tree.parse_args(["metadata", "summary", *a]).metadata.summary  # noqa: E731
    assert summary("P", "--json").json is True and summary("P", "--json").given == "P"
    assert summary("--json", "false").json is False and summary("--no_json").json is False
    assert summary("--json", "true", "P", "--debug").debug is True
    assert tree.parse_args(["--debug", "metadata", "summary"]).debug is True
    evaluate = tree.parse_args(["surrogate", "evaluate", "--json", "true"]).surrogate.evaluate
    assert evaluate.json is True
    tune = tree.parse_args(["tune", "--config", "configs/tune/transfer.yaml", "--data", "d", "--budget", "1"]).tune
    assert tune.method.init_args.drop_below == 0.2 and tune.budget_unit == "seconds"
