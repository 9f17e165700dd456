"""FinetuneModule: a causal LM with a peft adapter, trained on answer tokens only.

The pipeline choices a tuner searches over (adapter kind, rank, alpha, dropout, target modules, quantization,
optimizer, learning rate, schedule, NEFTune noise) are plain constructor arguments, so one YAML file or one
``PipelineConfig`` describes a whole run.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import lightning as L
import torch
import torch.nn.functional as F
from peft import LoraConfig, PeftModel, get_peft_model, prepare_model_for_kbit_training
from torchmetrics import MaxMetric, MeanMetric
from transformers import get_scheduler
from transformers.integrations.neftune import activate_neftune

from lit_transfer.finetune.data import IGNORE_INDEX
from lit_transfer.finetune.models import Quantization, load_causal_lm, load_tokenizer
from lit_transfer.finetune.throughput import FlopCounter

AdapterKind = Literal["lora", "rslora", "dora"]
OptimizerName = Literal["adamw", "adafactor", "sgd"]
SchedulerName = Literal["constant", "linear", "cosine"]
TARGET_MODULE_PRESETS = {
    # Phi-3 fuses q/k/v and gate/up; the other names cover Llama/Mistral/Qwen-style models.
    "attention": ["qkv_proj", "o_proj", "q_proj", "k_proj", "v_proj"],
    "mlp": ["gate_up_proj", "down_proj", "gate_proj", "up_proj"],
}
_SCHEDULER_NAMES = {"constant": "constant_with_warmup", "linear": "linear", "cosine": "cosine"}


def answer_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy over answer tokens (prompt and padding carry ``IGNORE_INDEX``)."""
    logits, targets = logits[:, :-1], labels[:, 1:]
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), targets.reshape(-1), ignore_index=IGNORE_INDEX)


def answer_statistics(logits: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
    """Loss and accuracy over answer tokens under teacher forcing.

    A row's answer is exactly matched when every answer token is the argmax given the true prefix, which is
    exactly when greedy decoding would reproduce it, at the cost of one forward pass.
    """
    logits, targets = logits[:, :-1], labels[:, 1:]
    mask = targets != IGNORE_INDEX
    tokens = mask.sum()
    loss_sum = F.cross_entropy(
        logits.reshape(-1, logits.size(-1)).float(),
        targets.reshape(-1),
        ignore_index=IGNORE_INDEX,
        reduction="sum",
    )
    hits = (logits.argmax(-1) == targets) & mask
    has_answer = mask.any(-1)
    exact = (hits | ~mask).all(-1)[has_answer]
    return {
        "loss": loss_sum / tokens.clamp(min=1),
        "tokens": tokens,
        "token_acc": hits.sum() / tokens.clamp(min=1),
        "exact": exact.float(),
    }


class FinetuneModule(L.LightningModule):
    """Adapter finetuning of a causal LM (Phi-3 by default) on answer tokens.

    Args:
        model: hub name or local path of a causal LM (loaded with ``from_pretrained``).
        quantization: ``nf4`` loads the frozen base in 4-bit NF4 (QLoRA); ``none`` keeps ``dtype``.
        dtype: dtype of the frozen base weights (``float32``, ``bfloat16``, ``float16`` or ``auto``).
        adapter: ``lora``, ``rslora`` (rank-stabilised scaling alpha/sqrt(r)) or ``dora`` (weight-decomposed).
        lora_rank: adapter rank r.
        lora_alpha: scaling numerator (the update is scaled by alpha/r, or alpha/sqrt(r) for rslora).
        lora_dropout: dropout on the adapter input.
        target_modules: ``all-linear``, ``attention``, ``mlp``, or a list of module names.
        optimizer: ``adamw``, ``adafactor`` or ``sgd`` (momentum 0.9).
        learning_rate: peak learning rate.
        weight_decay: decoupled weight decay.
        scheduler: ``constant``, ``linear`` or ``cosine`` decay after a linear warmup.
        warmup_fraction: share of the planned steps spent warming up.
        schedule_epochs: epochs the schedule is laid over; None means the trainer's ``max_epochs``. Set it to the
            largest fidelity a run may reach so that a run stopped early and continued later follows the same
            schedule as one trained straight through.
        neftune_alpha: NEFTune noise on input embeddings during training (0 disables it).
        attn_implementation: attention kernel passed to transformers (``sdpa``, ``eager``, ``flash_attention_2``).
        gradient_checkpointing: recompute activations in backward to save memory.
        seed: seeds the adapter's initial weights and each epoch's dropout/noise.
    """

    def __init__(
        self,
        model: str = "microsoft/Phi-3-mini-4k-instruct",
        quantization: Quantization = "none",
        dtype: str = "float32",
        adapter: AdapterKind = "lora",
        lora_rank: int = 8,
        lora_alpha: float = 16.0,
        lora_dropout: float = 0.05,
        target_modules: str | list[str] = "all-linear",
        optimizer: OptimizerName = "adamw",
        learning_rate: float = 2e-4,
        weight_decay: float = 0.0,
        scheduler: SchedulerName = "cosine",
        warmup_fraction: float = 0.03,
        schedule_epochs: int | None = None,
        neftune_alpha: float = 0.0,
        attn_implementation: str = "sdpa",
        gradient_checkpointing: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        if lora_rank < 1:
            raise ValueError(f"lora_rank must be >= 1, got {lora_rank}")
        if not learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {learning_rate}")
        if not lora_alpha > 0:
            raise ValueError(f"lora_alpha must be > 0, got {lora_alpha}")
        if not 0 <= lora_dropout < 1:
            raise ValueError(f"lora_dropout must be in [0, 1), got {lora_dropout}")
        if weight_decay < 0 or neftune_alpha < 0:
            raise ValueError("weight_decay and neftune_alpha must be >= 0")
        if not 0 <= warmup_fraction < 1:
            raise ValueError(f"warmup_fraction must be in [0, 1), got {warmup_fraction}")
        self.tokenizer = load_tokenizer(model)
        self.model: PeftModel | None = None
        # only adapter weights are checkpointed; the frozen base is reloaded from `model`
        self.strict_loading = False
        self.diverged = False
        self._flop_counter: FlopCounter | None = None
        self.flops_per_batch = 0
        self.val_loss, self.val_token_acc, self.val_acc = MeanMetric(), MeanMetric(), MeanMetric()
        self.val_acc_best = MaxMetric()
        self.test_loss, self.test_token_acc, self.test_acc = MeanMetric(), MeanMetric(), MeanMetric()

    # ------------------------------------------------------------------ model
    def lora_config(self, base: torch.nn.Module) -> LoraConfig:
        hp = self.hparams
        targets = hp.target_modules
        if isinstance(targets, str) and targets in TARGET_MODULE_PRESETS:
            names = {n.rsplit(".", 1)[-1] for n, _ in base.named_modules()}
            targets = [t for t in TARGET_MODULE_PRESETS[targets] if t in names]
            if not targets:
                raise ValueError(f"target_modules={hp.target_modules!r} matches no module of {hp.model}")
        return LoraConfig(
            task_type="CAUSAL_LM",
            r=hp.lora_rank,
            lora_alpha=hp.lora_alpha,
            lora_dropout=hp.lora_dropout,
            target_modules=targets,
            use_rslora=hp.adapter == "rslora",
            use_dora=hp.adapter == "dora",
        )

    def configure_model(self) -> None:
        """Load the base model and wrap it with the adapter (once; Lightning may call this again)."""
        if self.model is not None:
            return
        hp = self.hparams
        base = load_causal_lm(hp.model, hp.quantization, hp.dtype, hp.attn_implementation)
        if hp.quantization == "nf4":
            base = prepare_model_for_kbit_training(base, use_gradient_checkpointing=hp.gradient_checkpointing)
        elif hp.gradient_checkpointing:
            base.gradient_checkpointing_enable()
            base.enable_input_require_grads()
        with torch.random.fork_rng():
            torch.manual_seed(hp.seed)  # the adapter's initial weights depend on the seed alone
            self.model = get_peft_model(base, self.lora_config(base))
        self.model.train()  # from_pretrained returns eval mode; the loops switch modes from here on
        if hp.neftune_alpha > 0:
            activate_neftune(self.model, hp.neftune_alpha)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "position_ids") if k in batch}
        return self.model(**inputs, use_cache=False).logits

    def trainable_names(self) -> set[str]:
        """State-dict names of the trainable (adapter) weights, also when FSDP has wrapped submodules."""
        return {
            name.replace("_fsdp_wrapped_module.", "").replace("_checkpoint_wrapped_module.", "")
            for name, p in self.named_parameters()
            if p.requires_grad
        }

    def adapter_state_dict(self) -> dict[str, torch.Tensor]:
        names = self.trainable_names()
        return {k: v for k, v in self.state_dict().items() if k in names}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # filter the state dict the strategy gathered (under FSDP only rank 0 holds it) rather than recompute it
        names = self.trainable_names()
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if k in names}

    # ------------------------------------------------------------------ steps
    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor | None:
        loss = answer_loss(self(batch), batch["labels"])
        finite = torch.isfinite(loss).float()
        scale = torch.ones_like(loss)
        if self.trainer.world_size > 1:
            # DDP averages gradients over processes. Weighting each process's token-mean by its share of all answer
            # tokens makes that average the token-mean of the global batch, as one process would compute it.
            local = (batch["labels"][:, 1:] != IGNORE_INDEX).sum().float()
            total, finite = self.trainer.strategy.reduce(torch.stack([local, finite]), reduce_op="sum")
            scale = local * self.trainer.world_size / total
            finite = finite / self.trainer.world_size
        if finite < 1:
            # skip the update (on every process) so the adapter stays finite, and stop: the run is recorded diverged
            self.diverged = True
            self.trainer.should_stop = True
            return None
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["input_ids"].size(0))
        return loss * scale

    def _evaluate(self, batch: dict[str, torch.Tensor], loss, token_acc, acc) -> None:
        stats = answer_statistics(self(batch), batch["labels"])
        loss.update(stats["loss"], stats["tokens"])
        token_acc.update(stats["token_acc"], stats["tokens"])
        acc.update(stats["exact"])

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch, self.val_loss, self.val_token_acc, self.val_acc)

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch, self.test_loss, self.test_token_acc, self.test_acc)

    def on_validation_epoch_end(self) -> None:
        acc = self.val_acc.compute()
        self.val_acc_best.update(acc)
        self.log_dict(
            {
                "val/loss": self.val_loss.compute(),
                "val/acc": acc,
                "val/token_acc": self.val_token_acc.compute(),
                "val/acc_best": self.val_acc_best.compute(),
            },
            prog_bar=True,
        )
        for metric in (self.val_loss, self.val_acc, self.val_token_acc):
            metric.reset()

    def on_test_epoch_end(self) -> None:
        self.log_dict(
            {
                "test/loss": self.test_loss.compute(),
                "test/acc": self.test_acc.compute(),
                "test/token_acc": self.test_token_acc.compute(),
            }
        )
        for metric in (self.test_loss, self.test_acc, self.test_token_acc):
            metric.reset()

    @property
    def flop_counter(self) -> FlopCounter:
        if self._flop_counter is None:
            self._flop_counter = FlopCounter(self.model)
        return self._flop_counter

    def on_validation_batch_start(
        self, batch: dict[str, torch.Tensor], batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        self.flops_per_batch = self.flop_counter.evaluation(*batch["input_ids"].shape)  # read by ThroughputMonitor

    def on_train_batch_start(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self.flops_per_batch = self.flop_counter.training(*batch["input_ids"].shape)  # read by ThroughputMonitor
        # adapter dropout and NEFTune noise draw from the global RNG; seeding it from (seed, epoch, batch) makes a
        # run continued from a checkpoint draw the same noise as one trained straight through
        epoch = self.trainer.current_epoch
        torch.manual_seed((self.hparams.seed * 1_000_003 + epoch) * 1_000_003 + batch_idx)

    # ------------------------------------------------------------------ optimisation
    def steps_per_epoch(self) -> int:
        trainer = self.trainer
        if trainer.max_epochs is None or trainer.max_epochs < 1:
            raise ValueError("set trainer.max_epochs: the learning-rate schedule is defined over epochs")
        return max(1, math.ceil(trainer.estimated_stepping_batches / trainer.max_epochs))

    def configure_optimizers(self) -> dict[str, Any]:
        hp = self.hparams
        params = [p for p in self.parameters() if p.requires_grad]
        if hp.optimizer == "adamw":
            optimizer = torch.optim.AdamW(params, lr=hp.learning_rate, weight_decay=hp.weight_decay)
        elif hp.optimizer == "adafactor":
            optimizer = torch.optim.Adafactor(params, lr=hp.learning_rate, weight_decay=hp.weight_decay)
        elif hp.optimizer == "sgd":
            optimizer = torch.optim.SGD(params, lr=hp.learning_rate, momentum=0.9, weight_decay=hp.weight_decay)
        else:
            raise ValueError(f"unknown optimizer {hp.optimizer!r}; use adamw, adafactor or sgd")
        total = self.steps_per_epoch() * (hp.schedule_epochs or self.trainer.max_epochs)
        scheduler = get_scheduler(
            _SCHEDULER_NAMES[hp.scheduler],
            optimizer,
            num_warmup_steps=int(hp.warmup_fraction * total),
            num_training_steps=total,
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
