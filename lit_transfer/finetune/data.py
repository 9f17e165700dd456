"""QA datasets -> prompts -> answer-masked token sequences, as a LightningDataModule.

A dataset is a folder of ``train.jsonl`` / ``validation.jsonl`` / ``test.jsonl`` (one
``{"question", "answer", "context"?, "id"?}`` object a line), a ``datasets`` ``save_to_disk`` folder, or a
hub dataset name. Every problem is reported before training starts, naming the file and line.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import lightning as L
import torch
from torch.utils.data import DataLoader, DistributedSampler
from transformers import PreTrainedTokenizerBase

from lit_transfer.finetune import warm
from lit_transfer.finetune.models import load_tokenizer
from lit_transfer.resources import looks_like_path

IGNORE_INDEX = -100
SPLITS = ("train", "validation", "test")


class DatasetError(ValueError):
    """A QA dataset that cannot be used; the message names the file (and line) at fault."""


@dataclass(frozen=True)
class QAExample:
    question: str
    answer: str
    context: str | None = None
    id: str | None = None
    where: str | None = field(default=None, compare=False)  # its file and line, for messages about it


def _example(record: object, where: str) -> QAExample:
    if not isinstance(record, dict):
        raise DatasetError(f"{where}: expected a JSON object, got {type(record).__name__}")
    for name in ("question", "answer"):
        if name not in record:
            raise DatasetError(f"{where}: missing field {name!r}")
        if not isinstance(record[name], str) or not record[name].strip():
            raise DatasetError(f"{where}: field {name!r} must be a non-empty string")
    context = record.get("context")
    if context is not None and not isinstance(context, str):
        raise DatasetError(f"{where}: field 'context' must be a string")
    ident = record.get("id")
    return QAExample(record["question"], record["answer"], context, None if ident is None else str(ident), where)


MAX_LINE_BYTES = 1 << 20  # one example; checked before parsing, so a huge line costs neither memory nor time


def _check_text(record: dict, where: str) -> None:
    for key, value in record.items():
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise DatasetError(f"{where}: field {key!r} holds an invalid character (a lone surrogate)") from None


def read_jsonl(path: str | Path) -> list[QAExample]:
    """Read one split; a bad line raises ``DatasetError`` naming ``path:line`` and the problem."""
    path = Path(path)
    examples = []
    try:
        f = path.open("rb")
    except OSError as err:
        raise DatasetError(f"{path}: cannot read ({err.strerror})") from None
    with f:
        for number, raw in enumerate(f, start=1):
            where = f"{path}:{number}"
            if len(raw) > MAX_LINE_BYTES:
                raise DatasetError(
                    f"{where}: line of {len(raw):,} bytes; one example may have at most {MAX_LINE_BYTES:,}"
                )
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise DatasetError(
                    f"{where}: not UTF-8 (byte {err.object[err.start]:#04x} at column {err.start + 1})"
                ) from None
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise DatasetError(f"{where}: invalid JSON ({err.msg})") from None
            if isinstance(record, dict):
                _check_text(record, where)
            examples.append(_example(record, where))
    if not examples:
        raise DatasetError(f"{path}: split is empty")
    return examples


def check_splits(source: str | Path, splits: tuple[str, ...] = SPLITS) -> None:
    """Read ``splits`` of a dataset now, so a missing or bad split stops a command before any work is done."""
    for split in splits:
        if load_split(source, split) is None:
            raise DatasetError(f"{source}: no {split!r} split ({split}.jsonl)")


def load_split(source: str | Path, split: str) -> list[QAExample] | None:
    """Examples of ``split`` from a JSONL folder, a ``save_to_disk`` folder or a hub name; None if absent."""
    path = Path(source)
    if path.is_dir() and any(path.glob("*.jsonl")):
        file = path / f"{split}.jsonl"
        return read_jsonl(file) if file.exists() else None
    if path.is_dir() and not (path / "dataset_dict.json").exists() and not (path / "dataset_info.json").exists():
        raise DatasetError(
            f"{path}: no JSONL splits (train.jsonl, validation.jsonl, test.jsonl) and no datasets folder"
        )
    if not path.is_dir() and (path.exists() or looks_like_path(str(source))):
        what = "a file" if path.exists() else "no such folder"
        raise DatasetError(f"{path}: {what}; expected a folder of JSONL splits or a datasets folder")
    import datasets

    try:
        dataset = datasets.load_from_disk(str(path)) if path.is_dir() else datasets.load_dataset(str(source))
    except Exception as err:  # the hub or the folder could not give a dataset: one line, not its traceback
        raise DatasetError(f"{source}: cannot load the dataset ({type(err).__name__}: {err})") from None
    if split not in dataset:
        return None
    rows = dataset[split]
    if len(rows) == 0:
        raise DatasetError(f"{source} [{split}]: split is empty")
    return [_example(row, f"{source} [{split}] row {i}") for i, row in enumerate(rows)]


PROMPT_TEMPLATES = ("qa", "qa-v1")


class PromptFormatter:
    """Renders an example as (prompt, answer) text: the chat template when the tokenizer has one, else a plain
    ``Question: ... Answer:`` template.

    In the plain template ``qa`` the space after ``Answer:`` belongs to the answer, so an answer tokenizes as the
    same words do in running text (`` farmer``, as the base model read it in pretraining, not ``farmer``): on the
    small base model this alone lifts some tasks from near 0 to 0.2-0.4 exact-match accuracy. ``qa-v1`` keeps the
    space in the prompt, as the first experience was recorded.
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase, template: str = "qa") -> None:
        if template not in PROMPT_TEMPLATES:
            raise ValueError(f"unknown prompt template {template!r}; use one of {', '.join(PROMPT_TEMPLATES)}")
        self.tokenizer, self.template = tokenizer, template
        self.uses_chat_template = bool(getattr(tokenizer, "chat_template", None))

    @staticmethod
    def user_text(example: QAExample) -> str:
        if example.context:
            return f"Context: {example.context}\nQuestion: {example.question}"
        return f"Question: {example.question}"

    def __call__(self, example: QAExample) -> tuple[str, str]:
        user = self.user_text(example)
        if not self.uses_chat_template:
            eos = self.tokenizer.eos_token or ""
            if self.template == "qa-v1":
                return f"{user}\nAnswer: ", example.answer + eos
            return f"{user}\nAnswer:", f" {example.answer}{eos}"
        messages = [{"role": "user", "content": user}]
        prompt = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        full = self.tokenizer.apply_chat_template(
            [*messages, {"role": "assistant", "content": example.answer}], tokenize=False
        )
        if not full.startswith(prompt):
            raise DatasetError("the tokenizer's chat template does not extend the prompt with the answer")
        return prompt, full[len(prompt) :]


def encode(example: QAExample, formatter: PromptFormatter, max_length: int) -> dict[str, list[int]]:
    """Token ids and labels with the prompt masked; long prompts lose their start, never the answer's."""
    prompt, answer = formatter(example)
    tokenizer = formatter.tokenizer
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    answer_ids = tokenizer(answer, add_special_tokens=False)["input_ids"]
    if len(answer_ids) >= max_length:
        raise DatasetError(
            f"{example.where or 'example'} {example.id or example.question[:40]!r}: answer has {len(answer_ids)} "
            "tokens, "
            f"max_length is {max_length}"
        )
    prompt_ids = prompt_ids[-(max_length - len(answer_ids)) :]
    return {
        "input_ids": prompt_ids + answer_ids,
        "labels": [IGNORE_INDEX] * len(prompt_ids) + answer_ids,
    }


def pack(sequences: Sequence[dict[str, list[int]]], max_length: int) -> list[dict[str, list[int]]]:
    """Greedily concatenate sequences into rows of at most ``max_length`` tokens.

    ``position_ids`` restart at every sequence, which lets transformers build a block-diagonal causal mask, so
    packed examples never attend to each other.
    """
    rows: list[dict[str, list[int]]] = []
    row: dict[str, list[int]] = {"input_ids": [], "labels": [], "position_ids": []}
    for seq in sequences:
        if row["input_ids"] and len(row["input_ids"]) + len(seq["input_ids"]) > max_length:
            rows.append(row)
            row = {"input_ids": [], "labels": [], "position_ids": []}
        row["input_ids"] += seq["input_ids"]
        row["labels"] += seq["labels"]
        row["position_ids"] += list(range(len(seq["input_ids"])))
    if row["input_ids"]:
        rows.append(row)
    return rows


class AnswerMaskedCollator:
    """Pads a batch to its longest row (dynamic padding) and counts real and padding tokens."""

    def __init__(self, pad_token_id: int) -> None:
        self.pad_token_id = pad_token_id

    def __call__(self, rows: list[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        width = max(len(r["input_ids"]) for r in rows)
        batch = {
            "input_ids": torch.full((len(rows), width), self.pad_token_id, dtype=torch.long),
            "labels": torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long),
        }
        packed = "position_ids" in rows[0]
        if packed:
            batch["position_ids"] = torch.arange(width).repeat(len(rows), 1)
        else:
            batch["attention_mask"] = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            n = len(r["input_ids"])
            batch["input_ids"][i, :n] = torch.tensor(r["input_ids"])
            batch["labels"][i, :n] = torch.tensor(r["labels"])
            if packed:
                # pads continue the last sequence's positions, so they never start a new packed segment
                batch["position_ids"][i, :n] = torch.tensor(r["position_ids"])
                batch["position_ids"][i, n:] = torch.arange(width - n) + r["position_ids"][-1] + 1
            else:
                batch["attention_mask"][i, :n] = 1
        real = sum(len(r["input_ids"]) for r in rows)
        batch["num_tokens"] = torch.tensor(real)
        batch["num_padding_tokens"] = torch.tensor(len(rows) * width - real)
        return batch


class QADataModule(L.LightningDataModule):
    """Question-answer data for finetuning: prompt template, answer-only loss, dynamic padding.

    Args:
        data: folder of ``{train,validation,test}.jsonl``, a ``datasets.save_to_disk`` folder, or a hub name.
        tokenizer: tokenizer name or path; when None, the tokenizer of the model being trained is used.
        batch_size: training micro-batch size.
        eval_batch_size: batch size for validation/test (defaults to ``batch_size``).
        max_length: longest sequence in tokens; prompts are cut from the left to fit.
        packing: concatenate training examples into rows of ``max_length`` tokens (evaluation is never packed).
        seed: seed of the per-epoch shuffle.
        num_workers: DataLoader worker processes.
        prompt_template: plain template for tokenizers without a chat template (``PromptFormatter``).
    """

    def __init__(
        self,
        data: str,
        tokenizer: str | None = None,
        batch_size: int = 8,
        eval_batch_size: int | None = None,
        max_length: int = 512,
        packing: bool = False,
        seed: int = 0,
        num_workers: int = 0,
        prompt_template: Literal["qa", "qa-v1"] = "qa",
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.data = data
        self.tokenizer_name = tokenizer
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.max_length = max_length
        self.packing = packing
        self.seed = seed
        self.num_workers = num_workers
        self.prompt_template = prompt_template
        self.tokenizer: PreTrainedTokenizerBase | None = None
        self.splits: dict[str, list[dict[str, list[int]]]] = {}

    def _resolve_tokenizer(self) -> PreTrainedTokenizerBase:
        if self.tokenizer_name is not None:
            return load_tokenizer(self.tokenizer_name)
        module = self.trainer.lightning_module if self.trainer is not None else None
        tokenizer = getattr(module, "tokenizer", None)
        if tokenizer is None:
            raise ValueError("QADataModule needs `tokenizer`, or a model that carries one (FinetuneModule)")
        return tokenizer

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        self.tokenizer = self._resolve_tokenizer()
        self.splits = warm.task(self._task_key(), self._tokenize)
        needed = {"fit": ("train", "validation"), "validate": ("validation",), "test": ("test",)}
        for split in needed.get(stage or "fit", ()):
            if split not in self.splits:
                raise DatasetError(f"{self.data}: no {split!r} split, which stage {stage!r} needs")

    def _tokenize(self) -> dict[str, list[dict[str, list[int]]]]:
        formatter = PromptFormatter(self.tokenizer, self.prompt_template)
        splits = {}
        for split in SPLITS:
            examples = load_split(self.data, split)
            if examples is not None:
                splits[split] = [encode(e, formatter, self.max_length) for e in examples]
        return splits

    def _task_key(self) -> tuple:
        """What the tokenized splits depend on: the files (with size and modification time), the tokenizer, the
        prompt template and the length limit; a changed file is tokenized again."""
        path = Path(self.data)
        files = (
            tuple((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in sorted(path.glob("*")))
            if path.is_dir()
            else ()
        )
        tok = self.tokenizer
        return ("task", str(path.resolve()) if path.exists() else self.data, files, tok.name_or_path,
                getattr(tok, "chat_template", None), len(tok), self.prompt_template, self.max_length)  # fmt: skip

    def _loader(self, rows: list, batch_size: int, shuffle: bool) -> DataLoader:
        sampler = None
        if shuffle:
            # the order depends only on (seed, epoch) — Lightning calls set_epoch — so a run continued from a
            # checkpoint sees the same batches as one trained straight through; with N processes each takes every
            # N-th example of that same order, so N x batch_size under DDP equals one process's N-times batch
            world, rank = (self.trainer.world_size, self.trainer.global_rank) if self.trainer else (1, 0)
            sampler = DistributedSampler(rows, num_replicas=world, rank=rank, shuffle=True, seed=self.seed)
        return DataLoader(
            rows,
            batch_size=batch_size,
            sampler=sampler,
            collate_fn=AnswerMaskedCollator(self.tokenizer.pad_token_id),
            num_workers=self.num_workers,
        )

    def train_dataloader(self) -> DataLoader:
        rows = self.splits["train"]
        if self.packing:
            rows = pack(rows, self.max_length)
        return self._loader(rows, self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.splits["validation"], self.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.splits["test"], self.eval_batch_size, shuffle=False)
