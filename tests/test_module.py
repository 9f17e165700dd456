import math

import lightning as L
import pytest
import torch
from peft import PeftModel

from lit_transfer.finetune import AdapterCheckpoint, FinetuneModule, LearningCurve, QADataModule
from lit_transfer.finetune.curves import read_curve
from lit_transfer.finetune.data import IGNORE_INDEX
from lit_transfer.finetune.models import load_causal_lm
from lit_transfer.finetune.module import answer_loss, answer_statistics


def fit(root, model, data, max_epochs=2, ckpt_path=None, batch_size=4, **module_args):
    module = FinetuneModule(model=model, **module_args)
    datamodule = QADataModule(str(data), batch_size=batch_size, max_length=64)
    trainer = L.Trainer(
        accelerator="cpu",
        max_epochs=max_epochs,
        default_root_dir=str(root),
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[LearningCurve(), AdapterCheckpoint(dirpath=str(root / "checkpoints"))],
    )
    trainer.fit(module, datamodule, ckpt_path=ckpt_path)
    return module, trainer, read_curve(root / "curve.json")


def test_answer_statistics_on_known_logits():
    logits = torch.zeros(2, 4, 5)
    # row 0: positions 1..2 predict tokens 3 and 4 correctly; row 1: one of two answer tokens wrong
    logits[0, 1, 3] = logits[0, 2, 4] = 10
    logits[1, 1, 2] = logits[1, 2, 1] = 10
    labels = torch.tensor([[IGNORE_INDEX, IGNORE_INDEX, 3, 4], [IGNORE_INDEX, IGNORE_INDEX, 2, 4]])
    stats = answer_statistics(logits, labels)
    assert stats["tokens"] == 4
    assert stats["token_acc"] == pytest.approx(3 / 4)
    assert stats["exact"].tolist() == [1.0, 0.0]
    wrong = -math.log(math.exp(0) / (math.exp(10) + 4))  # loss of the one wrong token
    right = -math.log(math.exp(10) / (math.exp(10) + 4))
    assert float(stats["loss"]) == pytest.approx((3 * right + wrong) / 4, rel=1e-5)


def test_training_loss_equals_evaluation_loss():
    logits, labels = torch.randn(3, 7, 11), torch.randint(0, 11, (3, 7))
    labels[:, :3] = IGNORE_INDEX
    torch.testing.assert_close(answer_loss(logits, labels), answer_statistics(logits, labels)["loss"])


def test_loss_ignores_prompt_tokens():
    logits = torch.randn(1, 6, 7, requires_grad=True)
    labels = torch.tensor([[IGNORE_INDEX] * 4 + [2, 3]])
    answer_statistics(logits, labels)["loss"].backward()
    assert logits.grad[0, :3].abs().sum() == 0  # positions predicting prompt tokens get no gradient
    assert logits.grad[0, 3:5].abs().sum() > 0


def test_fit_records_zero_shot_curve_and_adapter_only_checkpoints(tmp_path, tiny_model, qa_dir):
    module, _, curve = fit(tmp_path, tiny_model, qa_dir, max_epochs=2, learning_rate=3e-3)
    assert curve["status"] == "ok"
    assert [p["fidelity"] for p in curve["points"]] == [0.0, 1.0, 2.0]
    assert set(curve["points"][1]["metrics"]) == {"val/loss", "val/acc", "val/token_acc", "train/loss"}
    assert curve["points"][0]["tokens"] == 0 < curve["points"][1]["tokens"] < curve["points"][2]["tokens"]
    assert curve["points"][2]["metrics"]["val/loss"] < curve["points"][0]["metrics"]["val/loss"]
    assert curve["cost"]["seconds"] > 0 and curve["cost"]["device"] == "cpu"

    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=False)
    assert ckpt["state_dict"] and all("lora_" in k for k in ckpt["state_dict"])
    assert set(ckpt["state_dict"]) == {n for n, p in module.named_parameters() if p.requires_grad}

    # the folder beside it is a plain peft adapter, loadable without lit_transfer
    peft_model = PeftModel.from_pretrained(load_causal_lm(tiny_model), tmp_path / "checkpoints" / "last").eval()
    restored = FinetuneModule.load_from_checkpoint(tmp_path / "checkpoints" / "last.ckpt").eval()
    ids = torch.tensor([[5, 9, 17, 33, 40]])
    with torch.no_grad():
        expected = module.eval().model(input_ids=ids).logits
        torch.testing.assert_close(peft_model(input_ids=ids).logits, expected)
        torch.testing.assert_close(restored.model(input_ids=ids).logits, expected)
    assert (tmp_path / "checkpoints" / "best" / "adapter_config.json").exists()


def test_continuing_to_more_epochs_equals_uninterrupted(tmp_path, tiny_model, qa_dir):
    args = {"learning_rate": 3e-3, "lora_dropout": 0.1, "schedule_epochs": 4, "neftune_alpha": 5.0}
    straight, _, curve = fit(tmp_path / "straight", tiny_model, qa_dir, max_epochs=4, **args)
    fit(tmp_path / "thawed", tiny_model, qa_dir, max_epochs=2, **args)
    thawed, _, continued = fit(
        tmp_path / "thawed",
        tiny_model,
        qa_dir,
        max_epochs=4,
        ckpt_path=str(tmp_path / "thawed" / "checkpoints" / "last.ckpt"),
        **args,
    )
    assert [p["fidelity"] for p in continued["points"]] == [0.0, 1.0, 2.0, 3.0, 4.0]
    for a, b in zip(curve["points"], continued["points"], strict=True):
        assert a["tokens"] == b["tokens"]
        for key, value in a["metrics"].items():
            assert b["metrics"][key] == pytest.approx(value, rel=1e-5, abs=1e-6), (a["fidelity"], key)
    assert continued["points"][4]["seconds"] > continued["points"][2]["seconds"]
    for (name, p), q in zip(straight.adapter_state_dict().items(), thawed.adapter_state_dict().values(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6, msg=name)


def test_schedule_spans_planned_epochs(tmp_path, tiny_model, qa_dir):
    module, trainer, _ = fit(
        tmp_path, tiny_model, qa_dir, max_epochs=1, scheduler="linear", warmup_fraction=0.0, schedule_epochs=4
    )
    lr = trainer.optimizers[0].param_groups[0]["lr"]
    assert lr == pytest.approx(module.hparams.learning_rate * 3 / 4, rel=1e-6)


def test_nan_run_is_recorded_as_diverged_not_crashed(tmp_path, tiny_model, qa_dir):
    module, trainer, curve = fit(
        tmp_path, tiny_model, qa_dir, max_epochs=3, optimizer="sgd", learning_rate=1e20, scheduler="constant"
    )
    assert curve["status"] == "diverged" and "NaN" in curve["message"]
    assert module.diverged and trainer.global_step < 2 * trainer.num_training_batches  # stopped early
    assert curve["points"][-1]["metrics"]["val/loss"] is None  # stored as JSON null, not NaN


@pytest.mark.parametrize(
    ("error", "status"),
    [(RuntimeError("kaboom at step"), "failed"), (torch.OutOfMemoryError("out of memory at step"), "oom")],
)
def test_failure_is_recorded_with_its_message(tmp_path, tiny_model, qa_dir, monkeypatch, error, status):
    def boom(self, batch, batch_idx):
        raise error

    monkeypatch.setattr(FinetuneModule, "training_step", boom)
    with pytest.raises(type(error)):
        fit(tmp_path, tiny_model, qa_dir, max_epochs=1)
    curve = read_curve(tmp_path / "curve.json")
    assert curve["status"] == status and curve["message"] == f"{type(error).__name__}: {error}"
    assert [p["fidelity"] for p in curve["points"]] == [0.0]


@pytest.mark.parametrize(
    "args",
    [
        {"adapter": "rslora", "optimizer": "adafactor", "target_modules": "attention"},
        {"adapter": "dora", "optimizer": "sgd", "target_modules": "mlp", "scheduler": "constant"},
        {"quantization": "nf4", "target_modules": ["qkv_proj", "down_proj"]},
    ],
    ids=["rslora-adafactor", "dora-sgd", "qlora-nf4"],
)
def test_pipeline_variants_train(tmp_path, tiny_model, qa_dir, args):
    module = FinetuneModule(model=tiny_model, learning_rate=1e-2, **args)
    module.configure_model()
    before = {k: v.clone() for k, v in module.adapter_state_dict().items()}
    _, _, curve = fit(tmp_path, tiny_model, qa_dir, max_epochs=1, learning_rate=1e-2, **args)
    assert curve["status"] == "ok" and math.isfinite(curve["points"][-1]["metrics"]["val/loss"])
    after = fit(tmp_path / "again", tiny_model, qa_dir, max_epochs=1, learning_rate=1e-2, **args)[0]
    changed = [k for k, v in after.adapter_state_dict().items() if not torch.equal(v, before[k])]
    assert changed
    if args.get("quantization") == "nf4":
        import bitsandbytes as bnb

        qkv = after.model.base_model.model.model.layers[0].self_attn.qkv_proj.base_layer
        assert isinstance(qkv, bnb.nn.Linear4bit) and qkv.weight.dtype == torch.uint8
    if args.get("adapter") == "dora":
        assert any("lora_magnitude_vector" in k for k in changed)


def test_bad_arguments_are_rejected(tiny_model):
    with pytest.raises(ValueError, match="lora_rank"):
        FinetuneModule(model=tiny_model, lora_rank=0)
    module = FinetuneModule(model=tiny_model, target_modules="attention")
    module.hparams.target_modules = "attention"
    module.hparams.quantization = "int3"
    with pytest.raises(ValueError, match="unknown quantization"):
        module.configure_model()


@pytest.mark.parametrize("adapter", ["lora", "dora"])
def test_peft_folder_matches_peft_save_pretrained(tmp_path, tiny_model, adapter):
    from safetensors.torch import load_file

    from lit_transfer.finetune.checkpoint import write_peft_adapter

    module = FinetuneModule(model=tiny_model, adapter=adapter)
    module.configure_model()
    for p in module.parameters():
        if p.requires_grad:
            p.data.normal_()  # lora_B starts at zero; make every tensor distinguishable
    state = {k.removeprefix("model."): v for k, v in module.adapter_state_dict().items()}
    write_peft_adapter(module.model, state, tmp_path / "ours")
    module.model.save_pretrained(tmp_path / "peft")
    ours, theirs = (load_file(tmp_path / d / "adapter_model.safetensors") for d in ("ours", "peft"))
    assert ours.keys() == theirs.keys() and len(ours) > 0
    for key in ours:
        assert torch.equal(ours[key], theirs[key]), key
    assert (tmp_path / "ours" / "adapter_config.json").read_text() == (
        tmp_path / "peft" / "adapter_config.json"
    ).read_text()


def test_ties_on_accuracy_are_broken_by_validation_loss(tmp_path, tiny_model, qa_dir):
    """Every epoch at val/acc 0 (an untrained tiny model): "best" is the epoch with the lowest val/loss, not the
    first one."""
    _, _, curve = fit(tmp_path, tiny_model, qa_dir, max_epochs=3, learning_rate=3e-3, lora_rank=2)
    epochs = [p for p in curve["points"] if p["fidelity"] > 0]
    assert all(p["metrics"]["val/acc"] == 0.0 for p in epochs)  # the tie this test is about
    losses = [p["metrics"]["val/loss"] for p in epochs]
    best = torch.load(tmp_path / "checkpoints" / "best.ckpt", weights_only=True)
    assert best["epoch"] == losses.index(min(losses)) and losses.index(min(losses)) > 0


def test_a_checkpoint_the_disk_cannot_hold_leaves_nothing_behind_and_names_the_file(tmp_path):
    """The disk fills while a checkpoint is written: the half-written temporary file is removed and the error says
    which checkpoint could not be saved (it used to say only [Errno 28])."""
    import errno
    from types import SimpleNamespace

    def save_checkpoint(path, weights_only=False):
        with open(path, "wb") as f:
            f.write(b"\0" * 1000)  # part of it made it to disk
        raise OSError(errno.ENOSPC, "No space left on device")

    trainer = SimpleNamespace(save_checkpoint=save_checkpoint, is_global_zero=True, global_step=3, loggers=[])
    callback = AdapterCheckpoint(dirpath=str(tmp_path), monitor="val/acc")
    target = tmp_path / "best.ckpt"
    with pytest.raises(OSError, match=r"best.ckpt: cannot save the checkpoint \(No space left on device\)") as raised:
        callback._save_checkpoint(trainer, str(target))
    assert raised.value.errno == errno.ENOSPC
    assert list(tmp_path.iterdir()) == []  # no best.ckpt.*.tmp


def test_a_meta_dataset_the_disk_cannot_hold_leaves_nothing_behind(tmp_path, monkeypatch):
    import errno
    import sqlite3

    from lit_transfer.metadataset.store import MetaDataset

    real = sqlite3.connect

    def full(path, *args, **kwargs):
        conn = real(path, *args, **kwargs)
        conn.execute("PRAGMA max_page_count = 1")  # no room for the schema
        return conn

    monkeypatch.setattr(sqlite3, "connect", full)
    with pytest.raises(OSError, match=r"own.sqlite: cannot create it, the disk is full") as raised:
        MetaDataset(tmp_path / "own.sqlite", create=True)
    assert raised.value.errno == errno.ENOSPC and list(tmp_path.iterdir()) == []
