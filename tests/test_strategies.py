import lightning as L
import torch

import lit_transfer.finetune  # noqa: F401 - registers the strategies
from lit_transfer.finetune.strategies import AdapterDDPStrategy


def test_registered_by_name_with_adapter_defaults():
    trainer = L.Trainer(strategy="ddp_adapter", accelerator="cpu", devices=2, logger=False)
    strategy = trainer.strategy
    assert isinstance(strategy, AdapterDDPStrategy)
    assert strategy._ddp_kwargs == {
        "find_unused_parameters": False,
        "static_graph": True,
        "gradient_as_bucket_view": True,
    }
    assert (
        L.Trainer(strategy="ddp_adapter_spawn", accelerator="cpu", devices=2, logger=False).strategy._start_method
        == "spawn"
    )


def test_frozen_parameters_are_left_out_of_ddp(monkeypatch):
    model = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.Linear(3, 1))
    model[0].requires_grad_(False)
    seen = {}
    monkeypatch.setattr(
        "lightning.pytorch.strategies.ddp.DistributedDataParallel",
        lambda module, device_ids, **kwargs: seen.setdefault("ignored", module._ddp_params_and_buffers_to_ignore),
    )
    AdapterDDPStrategy(accelerator="cpu", parallel_devices=[torch.device("cpu")] * 2)._setup_model(model)
    assert set(seen["ignored"]) == {"0.weight", "0.bias"}
