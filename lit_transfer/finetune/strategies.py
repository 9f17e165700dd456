"""Lightning strategies for adapter finetuning, registered by name so a YAML can say ``strategy: ddp_adapter``.

Plain DDP treats a LoRA model like any other: it broadcasts every weight at start-up (the whole frozen base),
and users often turn on ``find_unused_parameters`` which walks the graph every step. With adapters, only the
trainable weights need to be in sync, and the graph is the same every step.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

import torch
from lightning.pytorch.plugins.precision import FSDPPrecision, Precision
from lightning.pytorch.strategies import DDPStrategy, FSDPStrategy, StrategyRegistry
from torch.distributed.fsdp import MixedPrecision as TorchMixedPrecision
from torch.distributed.fsdp.wrap import CustomPolicy
from torch.nn import Module
from torch.nn.parallel import DistributedDataParallel

from lit_transfer.finetune.precision import cast_for_adapter_training


class AdapterDDPStrategy(DDPStrategy):
    """DDP that syncs and buckets only trainable (adapter) parameters, without unused-parameter search, with a
    static graph. The frozen base is loaded identically on every rank, so it is neither broadcast nor reduced.

    Registered as ``ddp_adapter`` (processes started by Lightning) and ``ddp_adapter_spawn``.
    """

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("find_unused_parameters", False)
        kwargs.setdefault("static_graph", True)
        kwargs.setdefault("gradient_as_bucket_view", True)
        super().__init__(**kwargs)

    def _setup_model(self, model: Module) -> DistributedDataParallel:
        frozen = [name for name, p in model.named_parameters() if not p.requires_grad]
        # DDP's own hook for parameters it must neither broadcast at construction nor all-reduce
        DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(model, frozen)
        return super()._setup_model(model)

    @classmethod
    def register_strategies(cls, strategy_registry: Any) -> None:
        for name, start_method in (("ddp_adapter", "popen"), ("ddp_adapter_spawn", "spawn")):
            strategy_registry.register(
                name, cls, description=f"DDP for adapter finetuning ({start_method})", start_method=start_method,
                override=True,
            )  # fmt: skip


AdapterDDPStrategy.register_strategies(StrategyRegistry)


def _adapter_wrap_policy(model: Module) -> CustomPolicy:
    """One FSDP unit per decoder layer (the frozen base, sharded) and one per module that holds only trainable
    weights (each adapter), because an FSDP flat parameter has a single dtype: bf16 base, fp32 adapters."""
    layer_names = set()
    for module in model.modules():
        layer_names.update(getattr(module, "_no_split_modules", None) or [])

    def wrap(module: Module) -> bool:
        if type(module).__name__ in layer_names:
            return True
        own = list(module.parameters(recurse=False))
        return bool(own) and all(p.requires_grad for p in own)

    return CustomPolicy(wrap)


class AdapterFSDPPrecision(FSDPPrecision):
    """FSDP's precision plugin with adapter semantics: the frozen base is cast to the low dtype, trainable weights
    stay fp32, and FSDP casts nothing (each unit keeps its own dtype); compute runs under autocast."""

    @property
    def low_dtype(self) -> torch.dtype | None:
        return {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(self.precision)

    def convert_module(self, module: Module) -> Module:
        return cast_for_adapter_training(module, self.low_dtype) if self.low_dtype else module

    @property
    def mixed_precision_config(self) -> TorchMixedPrecision:
        return TorchMixedPrecision()  # no param/reduce/buffer casting by FSDP

    def forward_context(self) -> AbstractContextManager:
        if self.low_dtype is None:
            return nullcontext()
        return torch.autocast("cuda" if torch.cuda.is_available() else "cpu", dtype=self.low_dtype)


class AdapterFSDPStrategy(FSDPStrategy):
    """FSDP for adapter finetuning: shards the frozen base layer by layer, keeps adapters in fp32 units of their
    own, and turns the Trainer's ``precision`` (``bf16-mixed``, ``16-mixed``) into adapter mixed precision
    (frozen base stored in the low dtype). Registered as ``fsdp_adapter``; checkpoints hold the gathered adapter
    only, like every other strategy's.
    """

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("use_orig_params", True)  # frozen and trainable weights under one FSDP root
        kwargs.setdefault("state_dict_type", "full")
        super().__init__(**kwargs)

    @property
    def precision_plugin(self) -> FSDPPrecision:
        return FSDPStrategy.precision_plugin.fget(self)

    @precision_plugin.setter
    def precision_plugin(self, plugin: Precision | None) -> None:
        if plugin is not None and type(plugin) is FSDPPrecision:
            plugin = AdapterFSDPPrecision(plugin.precision, plugin.scaler)
        FSDPStrategy.precision_plugin.fset(self, plugin)

    def _setup_model(self, model: Module) -> Module:
        policy = self.kwargs.pop("auto_wrap_policy", None) or _adapter_wrap_policy(model)
        if self.root_device.type != "cpu":
            self.kwargs["auto_wrap_policy"] = policy
            return super()._setup_model(model)
        # on CPU (tests, gloo) FSDP must be told the device; Lightning passes none. Lightning's own set-up then
        # finds the model wrapped and does the rest (metrics, activation checkpointing) as on a GPU.
        from torch.distributed.fsdp import FullyShardedDataParallel

        wrapped = FullyShardedDataParallel(
            model, auto_wrap_policy=policy, cpu_offload=self.cpu_offload, mixed_precision=self.mixed_precision_config,
            sharding_strategy=self.sharding_strategy, device_id=torch.device("cpu"), **self.kwargs,
        )  # fmt: skip
        return super()._setup_model(wrapped)

    # Full state dicts: torch's FSDP crashes (SIGSEGV, torch 2.13 with gloo) when asked to "offload to CPU" tensors
    # that already live on the CPU, and Lightning always asks. On CPU, gather without offloading.
    def lightning_module_state_dict(self) -> dict[str, Any]:
        with self._cpu_safe_full_state_dict():
            return super().lightning_module_state_dict()

    def optimizer_state(self, optimizer: Any) -> dict[str, Any]:
        with self._cpu_safe_full_state_dict():
            return super().optimizer_state(optimizer)

    def load_checkpoint(self, checkpoint_path: Any, weights_only: bool | None = None) -> dict[str, Any]:
        with self._cpu_safe_full_state_dict():
            return super().load_checkpoint(checkpoint_path, weights_only)

    @contextmanager
    def _cpu_safe_full_state_dict(self) -> Iterator[None]:
        if self.root_device.type != "cpu":
            yield
            return
        import lightning.pytorch.strategies.fsdp as lightning_fsdp

        original = lightning_fsdp._get_full_state_dict_context
        lightning_fsdp._get_full_state_dict_context = _full_state_dict_without_offload
        try:
            yield
        finally:
            lightning_fsdp._get_full_state_dict_context = original

    @classmethod
    def register_strategies(cls, strategy_registry: Any) -> None:
        strategy_registry.register("fsdp_adapter", cls, description="FSDP for adapter finetuning", override=True)


def _full_state_dict_without_offload(module: Module, world_size: int, rank0_only: bool = True) -> Any:
    from torch.distributed.fsdp import FullStateDictConfig, FullyShardedDataParallel, StateDictType
    from torch.distributed.fsdp.api import FullOptimStateDictConfig

    return FullyShardedDataParallel.state_dict_type(
        module=module,
        state_dict_type=StateDictType.FULL_STATE_DICT,
        state_dict_config=FullStateDictConfig(offload_to_cpu=False, rank0_only=rank0_only),
        optim_state_dict_config=FullOptimStateDictConfig(offload_to_cpu=False, rank0_only=rank0_only),
    )


AdapterFSDPStrategy.register_strategies(StrategyRegistry)
