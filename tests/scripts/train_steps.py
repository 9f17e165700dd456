"""Train a few steps with a given number of CPU processes and save the adapter (used by test_ddp.py).

python tests/scripts/train_steps.py MODEL DATA OUT_DIR DEVICES BATCH_SIZE
"""

import sys

import lightning as L
import torch

from lit_transfer.finetune import AdapterCheckpoint, FinetuneModule, QADataModule

if __name__ == "__main__":
    model, data, out, devices, batch = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    module = FinetuneModule(model=model, lora_dropout=0.0, learning_rate=1e-2, scheduler="constant", warmup_fraction=0)
    trainer = L.Trainer(
        accelerator="cpu", devices=devices, strategy="ddp_adapter" if devices > 1 else "auto", max_epochs=2,
        logger=False, enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
        callbacks=[AdapterCheckpoint(dirpath=f"{out}/checkpoints", monitor=None)],
    )  # fmt: skip
    trainer.fit(module, QADataModule(data, batch_size=batch, max_length=64))
    if trainer.is_global_zero:
        torch.save(module.adapter_state_dict(), f"{out}/adapter.pt")
