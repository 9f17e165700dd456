import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Ray in tests lives on the loopback address only: with this, a Ray node takes 127.0.0.1 as its address instead of
# the machine's network address (Ray's own switch for single-machine use; read when Ray is imported)
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
# Ray starts its workers at niceness 15: beside any other work on a small machine they would barely run
os.environ.setdefault("RAY_worker_niceness", "0")


import pytest

from lit_transfer.finetune.demo import corpus, toy_qa_examples
from lit_transfer.finetune.models import build_tiny_phi3
from lit_transfer.io import write_qa_folder


@pytest.fixture(scope="session")
def qa_splits():
    return toy_qa_examples(seed=1, people=12)


@pytest.fixture(scope="session")
def qa_dir(tmp_path_factory, qa_splits):
    return write_qa_folder(qa_splits, tmp_path_factory.mktemp("qa"))


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, qa_splits):
    """A random tiny Phi-3 with a chat-template tokenizer, saved and loaded by path like a hub model."""
    return str(build_tiny_phi3(tmp_path_factory.mktemp("tiny-phi3"), corpus(qa_splits), vocab_size=320))


@pytest.fixture(scope="session")
def tiny_model_plain(tmp_path_factory, qa_splits):
    """The same without a chat template, for the plain prompt path."""
    out = tmp_path_factory.mktemp("tiny-phi3-plain")
    return str(build_tiny_phi3(out, corpus(qa_splits), vocab_size=320, chat_template=False))


def write_synthetic_metadataset(
    path, tasks=("t0", "t1", "t2", "t3"), configs=48, epochs=8, seed=0, base_model="synthetic", own=0,
    log_train_sizes=None, validation_cost=0.0,
):  # fmt: skip
    """A meta-dataset of saturating curves acc(t) = A_task * (1 - exp(-rate * t)) whose rate depends on the config
    (learning rate, rank, optimizer), and costs per training token that grow with rank and shrink with batch size:
    what surrogates must recover. Every task runs ``configs`` shared configs and ``own`` of its own. With
    ``validation_cost``, an epoch also costs that many seconds per validation token (64 examples a task), and
    ``log_train_sizes`` sets the tasks' training sizes."""
    import math

    from lit_transfer.metadataset.features import TASK_FEATURES
    from lit_transfer.metadataset.store import MetaDataset, RunRecord
    from lit_transfer.space import SearchSpace

    space = SearchSpace.from_yaml()
    sampled = [space.default(), *space.sample(configs - 1, seed=seed)]
    with MetaDataset(path, create=True) as store:
        for i, task in enumerate(tasks):
            level = 0.7 + 0.1 * i
            features = {name: 1.0 + 0.1 * i * (j + 1) for j, name in enumerate(TASK_FEATURES)}
            features.update(zero_shot_loss=5.0, zero_shot_acc=0.0, log_train_size=5.0 + 0.2 * i)
            if log_train_sizes is not None:
                features["log_train_size"] = log_train_sizes[i]
            if validation_cost:
                features["log_validation_size"] = math.log(64)
            store.add_task(task, features, task.split("-")[0])  # the names show the family
            for config in sampled + (space.sample(own, seed=100 + i) if own else []):
                lr = space.hyperparameters["learning_rate"].encode(config["learning_rate"])[0]
                rank = space.hyperparameters["lora_rank"].encode(config["lora_rank"])[0]
                rate = 0.02 + 0.8 * lr**2 + 0.1 * rank + (0.0 if config["optimizer"] == "sgd" else 0.1)
                example = features["mean_prompt_tokens"] + features["mean_answer_tokens"]  # tokens
                tokens = math.exp(features["log_train_size"]) * example  # an epoch's work: training tokens
                per_epoch = 1e-3 * tokens * (32 / config["batch_size"]) ** 0.5 * (1 + rank)
                per_epoch += validation_cost * math.exp(features["log_validation_size"]) * example
                curve = [{"fidelity": 0.0, "metrics": {"val/acc": 0.0, "val/loss": 5.0}, "seconds": 0.0}]
                for t in range(1, epochs + 1):
                    acc = level * (1 - math.exp(-rate * t))
                    curve.append(
                        {"fidelity": float(t), "metrics": {"val/acc": acc, "val/loss": 5.0 * (1 - acc)},
                         "seconds": per_epoch * t}
                    )  # fmt: skip
                store.add_run(
                    RunRecord(
                        task, dict(config.values), 0, base_model, epochs, "ok", curve=curve, seconds=per_epoch * epochs
                    )
                )
    return path


@pytest.fixture(scope="session")
def synthetic_metadataset(tmp_path_factory):
    return str(write_synthetic_metadataset(tmp_path_factory.mktemp("synthetic") / "meta.sqlite"))


def fit(module, datamodule, trainer):
    """Meta-train a surrogate built by a test (no logger, no checkpoints)."""
    import lightning as L

    L.Trainer(
        **{"accelerator": "cpu", **trainer}, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False,
    ).fit(module, datamodule)  # fmt: skip
    return module


def short_recipe(tmp_path, target, max_epochs):
    """The shipped surrogate YAML of ``target`` with fewer epochs, for tests of the commands that train."""
    from pathlib import Path

    import yaml

    from lit_transfer.surrogate.recipes import DEFAULT_RECIPES

    config = yaml.safe_load(Path(DEFAULT_RECIPES[target]).read_text())
    config["trainer"]["max_epochs"] = max_epochs
    path = tmp_path / f"{target}.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def load_tool(name):
    """A script of ``tools/`` as a module (tools are not a package)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "tools" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
