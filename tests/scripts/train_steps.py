"""Train two epochs with a given strategy on CPU processes and save the adapter (used by test_ddp.py).

python tests/scripts/train_steps.py MODEL DATA OUT_DIR DEVICES BATCH_SIZE [STRATEGY] [PRECISION]
"""

import json
import sys

import lightning as L

from lit_transfer.finetune import AdapterCheckpoint, FinetuneModule, QADataModule

if __name__ == "__main__":
    model, data, out, devices, batch = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    strategy = sys.argv[6] if len(sys.argv) > 6 else ("ddp_adapter" if devices > 1 else "auto")
    precision = sys.argv[7] if len(sys.argv) > 7 else "32-true"
    module = FinetuneModule(model=model, lora_dropout=0.0, learning_rate=1e-2, scheduler="constant", warmup_fraction=0)
    trainer = L.Trainer(
        accelerator="cpu", devices=devices, strategy=strategy, precision=precision, max_epochs=2, logger=False,
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
        callbacks=[AdapterCheckpoint(dirpath=f"{out}/checkpoints", monitor=None)],
    )  # fmt: skip
    trainer.fit(module, QADataModule(data, batch_size=batch, max_length=64))
    dtypes = {"trainable": set(), "frozen": set()}
    for p in module.parameters():
        dtypes["trainable" if p.requires_grad else "frozen"].add(str(p.dtype))
    if trainer.is_global_zero:
        with open(f"{out}/dtypes.json", "w") as f:
            json.dump({k: sorted(v) for k, v in dtypes.items()}, f)
