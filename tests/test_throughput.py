import csv
from pathlib import Path

import lightning as L
from lightning.pytorch.loggers import CSVLogger

from lit_transfer.finetune import AdapterThroughputMonitor, FinetuneModule, QADataModule
from lit_transfer.finetune.throughput import FlopCounter


def test_flops_count_adapters_not_frozen_weight_gradients(tiny_model):
    module = FinetuneModule(model=tiny_model, lora_rank=4, target_modules="attention")
    module.configure_model()
    config = module.model.config
    d, inter, layers, vocab = config.hidden_size, config.intermediate_size, config.num_hidden_layers, config.vocab_size
    frozen = layers * (d * 3 * d + d * d + d * 2 * inter + inter * d) + d * vocab  # qkv, o, gate_up, down; head
    adapters = layers * 4 * ((d + 3 * d) + (d + d))  # rank-4 A and B for qkv_proj and o_proj
    counter = FlopCounter(module.model)
    assert (counter.frozen, counter.trainable) == (frozen, adapters)
    seq = 32
    assert counter.training(2, seq) == (4 * frozen + 6 * adapters + 12 * layers * d * seq) * 2 * seq
    assert counter.evaluation(2, seq) == (2 * (frozen + adapters) + 4 * layers * d * seq) * 2 * seq
    full_finetuning = 6 * (frozen + adapters) + 12 * layers * d * seq
    assert counter.training(1, seq) / seq < full_finetuning  # the 6N rule would overstate MFU


def test_monitor_logs_flops_and_tokens(tmp_path, tiny_model, qa_dir):
    trainer = L.Trainer(
        accelerator="cpu", max_epochs=1, logger=CSVLogger(tmp_path), log_every_n_steps=1, enable_progress_bar=False,
        enable_checkpointing=False, callbacks=[AdapterThroughputMonitor(window_size=2)],
    )  # fmt: skip
    trainer.fit(FinetuneModule(model=tiny_model), QADataModule(str(qa_dir), batch_size=4, max_length=64))
    trainer.logger.save()
    rows = list(csv.DictReader((Path(trainer.logger.log_dir) / "metrics.csv").read_text().splitlines()))
    logged = {k for row in rows for k, v in row.items() if v}
    assert {"train/device/flops_per_sec", "train/device/items_per_sec", "validate/device/flops_per_sec"} <= logged
    assert all(float(r["train/device/flops_per_sec"]) > 0 for r in rows if r["train/device/flops_per_sec"])
