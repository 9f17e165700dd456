"""AdapterPrecision on CPU (bf16 autocast works there): dtype invariants, memory, and numerics vs fp32."""

import lightning as L
import pytest
import torch

from lit_transfer.finetune import AdapterPrecision, FinetuneModule, QADataModule


class Recorder(L.Callback):
    def __init__(self):
        self.losses, self.checked = [], False

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.losses.append(float(outputs["loss"]))

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        if self.checked:
            return
        self.checked = True
        for name, param in pl_module.named_parameters():
            assert (param.grad is not None) == param.requires_grad, name  # gradients only on adapters
            if param.grad is not None:
                assert param.grad.dtype == torch.float32, name


def train(tiny_model, qa_dir, plugins=(), steps=6):
    torch.manual_seed(0)
    module = FinetuneModule(model=tiny_model, learning_rate=3e-3, lora_dropout=0.0, scheduler="constant")
    recorder = Recorder()
    trainer = L.Trainer(
        accelerator="cpu", max_steps=steps, max_epochs=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0, num_sanity_val_steps=0,
        plugins=list(plugins), callbacks=[recorder],
    )  # fmt: skip
    trainer.fit(module, QADataModule(str(qa_dir), batch_size=4, max_length=64))
    return module, trainer, recorder


def test_dtypes_after_setup_and_steps(tiny_model, qa_dir):
    module, trainer, recorder = train(tiny_model, qa_dir, [AdapterPrecision("bf16", device="cpu")])
    assert recorder.checked
    trainable = {n for n, p in module.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    for name, param in module.named_parameters():
        assert param.dtype == (torch.float32 if name in trainable else torch.bfloat16), name
    for state in trainer.optimizers[0].state.values():
        assert state["exp_avg"].dtype == state["exp_avg_sq"].dtype == torch.float32
    stored = sum(p.numel() * p.element_size() for p in module.parameters())
    fp32 = sum(p.numel() * 4 for p in module.parameters())
    frozen_share = 1 - sum(module.adapter_state_dict()[n].numel() for n in trainable) / (fp32 / 4)
    assert stored == pytest.approx(fp32 * (1 - frozen_share / 2), rel=1e-6)  # frozen weights take half the bytes


def test_tracks_fp32_training(tiny_model, qa_dir):
    """bf16 keeps 8 bits of mantissa (relative rounding ~4e-3 per op), so after a few steps the loss may differ by
    about a percent from fp32 training; a dtype mistake in the adapters or optimizer shows up as far more."""
    _, _, mixed = train(tiny_model, qa_dir, [AdapterPrecision("bf16", device="cpu")])
    _, _, full = train(tiny_model, qa_dir)
    assert len(mixed.losses) == len(full.losses) == 6
    for a, b in zip(mixed.losses, full.losses, strict=True):
        assert a == pytest.approx(b, rel=2e-2)
    assert mixed.losses[-1] < mixed.losses[0]


def test_fp16_uses_a_scaler_and_bad_names_fail():
    assert AdapterPrecision("fp16", device="cpu").scaler is not None
    assert AdapterPrecision("bf16", device="cpu").scaler is None
    with pytest.raises(ValueError, match="'bf16' or 'fp16'"):
        AdapterPrecision("int8")
