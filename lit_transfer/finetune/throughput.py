"""Honest throughput for adapter finetuning: tokens/s (padding counted apart) and model FLOPs for MFU.

Full finetuning costs about 6N FLOPs per token (forward 2N, backward 4N: gradients for activations *and*
weights). With frozen base weights the backward pass still propagates activation gradients through every layer
(2N) but computes weight gradients only for the adapters, so a training token costs about 4N + 6N_adapter, plus
attention's 12 * layers * hidden * sequence (score and value matmuls, forward and backward), which does not
depend on which weights train. Counting 6N would inflate MFU by up to 50%.
"""

from __future__ import annotations

import torch
from lightning.pytorch.callbacks import ThroughputMonitor


class FlopCounter:
    """Model FLOPs of a causal LM with adapters, from its shape (counted once, then cheap per batch)."""

    def __init__(self, model: torch.nn.Module) -> None:
        linear = sum(m.in_features * m.out_features for m in model.modules() if isinstance(m, torch.nn.Linear))
        self.trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        self.frozen = linear - self.trainable  # 4-bit layers count by shape, not by packed storage
        self.attention_per_position = model.config.num_hidden_layers * model.config.hidden_size

    def training(self, batch_size: int, seq_len: int) -> int:
        """Forward 2N, activation gradients 2N, weight gradients only for the adapters; attention 12*L*d*s."""
        per_token = 4 * self.frozen + 6 * self.trainable + 12 * self.attention_per_position * seq_len
        return per_token * batch_size * seq_len

    def evaluation(self, batch_size: int, seq_len: int) -> int:
        per_token = 2 * (self.frozen + self.trainable) + 4 * self.attention_per_position * seq_len
        return per_token * batch_size * seq_len


class AdapterThroughputMonitor(ThroughputMonitor):
    """Lightning's ThroughputMonitor for QA batches: samples/s, tokens/s (padded positions, as computed) and,
    when the module exposes ``flops_per_batch`` (FinetuneModule does), FLOPs/s and MFU on known GPUs.

    Args:
        window_size: batches the rolling averages span.
    """

    def __init__(self, window_size: int = 50) -> None:
        super().__init__(batch_size_fn=_batch_size, length_fn=_positions, window_size=window_size)


def _batch_size(batch: dict[str, torch.Tensor]) -> int:
    return batch["input_ids"].size(0)


def _positions(batch: dict[str, torch.Tensor]) -> int:
    return batch["input_ids"].numel()
