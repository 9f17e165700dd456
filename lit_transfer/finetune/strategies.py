"""Lightning strategies for adapter finetuning, registered by name so a YAML can say ``strategy: ddp_adapter``.

Plain DDP treats a LoRA model like any other: it broadcasts every weight at start-up (the whole frozen base),
and users often turn on ``find_unused_parameters`` which walks the graph every step. With adapters, only the
trainable weights need to be in sync, and the graph is the same every step.
"""

from __future__ import annotations

from typing import Any

from lightning.pytorch.strategies import DDPStrategy, StrategyRegistry
from torch.nn import Module
from torch.nn.parallel import DistributedDataParallel


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
