"""AdapterPrecision: mixed precision for adapter finetuning.

Lightning's ``bf16-mixed`` keeps every weight in fp32 (a frozen 3.8B-parameter base wastes ~15 GB on copies
it never updates) and ``bf16-true`` trains the adapters in bf16, where small learning-rate updates round away.
This plugin stores the frozen base in the low-precision dtype, keeps trainable (adapter) weights — and so their
gradients and optimizer states — in fp32, and runs the forward pass under autocast. fp16 gets Lightning's
gradient scaler; bf16 needs none. A 4-bit (nf4) base is left as bitsandbytes stored it.
"""

from __future__ import annotations

from typing import Literal

import torch
from lightning.pytorch.plugins.precision import MixedPrecision

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class AdapterPrecision(MixedPrecision):
    """Frozen base in ``bf16``/``fp16``, adapters in fp32, matmuls under autocast.

    Args:
        precision: ``bf16`` (no scaler needed) or ``fp16`` (with a gradient scaler; pre-Ampere GPUs).
        device: ``cuda`` or ``cpu`` (bf16 autocast works on CPU, which is how the tests run it).

    Select it in YAML with ``trainer.plugins: [{class_path: lit_transfer.finetune.AdapterPrecision}]``.
    """

    def __init__(self, precision: Literal["bf16", "fp16"] = "bf16", device: str = "cuda") -> None:
        if precision not in _DTYPES:
            raise ValueError(f"precision must be 'bf16' or 'fp16', got {precision!r}")
        super().__init__("bf16-mixed" if precision == "bf16" else "16-mixed", device)
        self.low_dtype = _DTYPES[precision]

    def convert_module(self, module: torch.nn.Module) -> torch.nn.Module:
        return cast_for_adapter_training(module, self.low_dtype)


def cast_for_adapter_training(module: torch.nn.Module, low_dtype: torch.dtype) -> torch.nn.Module:
    """Cast frozen floating-point weights to ``low_dtype`` and trainable ones to fp32, in place."""
    for param in module.parameters():
        if not param.is_floating_point():
            continue  # quantized (e.g. nf4) storage stays as it is
        target = torch.float32 if param.requires_grad else low_dtype
        if param.dtype != target:
            param.data = param.data.to(target)
    # buffers (e.g. rotary inverse frequencies) stay as the model keeps them: they are small and precision-critical
    return module
