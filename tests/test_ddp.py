"""DDP on CPU (gloo), 2 processes, through the registered ``ddp_adapter`` strategy."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from lit_transfer.finetune import FinetuneModule

# process groups of two ranks each: one at a time (one pytest-xdist worker)
pytestmark = pytest.mark.xdist_group("ddp")

SCRIPT = Path(__file__).parent / "scripts" / "train_steps.py"


@pytest.fixture(scope="module")
def uneven_qa(tmp_path_factory, qa_splits):
    """Answers of very different lengths, so the two processes see different numbers of answer tokens: a plain
    average of their mean losses would differ from the mean over the whole batch."""
    folder = tmp_path_factory.mktemp("uneven")
    rows = [
        {"question": r["question"], "answer": r["answer"] * (1 + i % 4)} for i, r in enumerate(qa_splits["train"][:16])
    ]
    for split in ("train", "validation"):
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def _train(tiny_model, data, out, devices, batch, *extra):
    """Train in subprocesses; return the adapter as saved in the peft folder of the last checkpoint."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, str(SCRIPT), tiny_model, str(data), str(out), str(devices), str(batch), *extra],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    restored = FinetuneModule.load_from_checkpoint(out / "checkpoints" / "last.ckpt")  # in one process
    from_peft = load_file(out / "checkpoints" / "last" / "adapter_model.safetensors")
    adapter = restored.adapter_state_dict()
    assert len(from_peft) == len(adapter) > 0
    return adapter


@pytest.mark.slow
def test_two_processes_equal_one_process_with_the_combined_batch(tmp_path, tiny_model, uneven_qa):
    ddp = _train(tiny_model, uneven_qa, tmp_path / "ddp", devices=2, batch=2)
    single = _train(tiny_model, uneven_qa, tmp_path / "single", devices=1, batch=4)
    assert set(ddp) == set(single)
    moved = 0
    assert (tmp_path / "ddp" / "dtypes.json").exists()
    for name, weight in single.items():
        # the all-reduce adds in another order than one process, and Adam divides each update by the root of the
        # gradient's second moment, which magnifies that float32 rounding where a gradient is tiny: seen 1e-4 of
        # the tensor's scale after 8 steps. Different data or unaveraged gradients give differences near 1.
        scale = weight.abs().max()
        assert (ddp[name] - weight).abs().max() <= 1e-3 * scale, name
        moved += int(not torch.equal(weight, torch.zeros_like(weight)) and "lora_B" in name)
    assert moved > 0  # the adapters did train


@pytest.mark.slow
def test_fsdp_shards_a_bf16_base_with_fp32_adapters_and_saves_like_every_strategy(tmp_path, tiny_model, uneven_qa):
    fsdp = _train(tiny_model, uneven_qa, tmp_path / "fsdp", 2, 2, "fsdp_adapter", "32-true")
    single = _train(tiny_model, uneven_qa, tmp_path / "single", 1, 4)
    for name, weight in single.items():
        assert (fsdp[name] - weight).abs().max() <= 1e-3 * weight.abs().max(), name
    _train(tiny_model, uneven_qa, tmp_path / "bf16", 2, 2, "fsdp_adapter", "bf16-mixed")
    dtypes = json.loads((tmp_path / "bf16" / "dtypes.json").read_text())
    assert dtypes == {"trainable": ["torch.float32"], "frozen": ["torch.bfloat16"]}
