import json

import pytest
import torch

from lit_transfer.finetune.data import (
    IGNORE_INDEX,
    AnswerMaskedCollator,
    DatasetError,
    PromptFormatter,
    QADataModule,
    QAExample,
    encode,
    load_split,
    pack,
    read_jsonl,
)
from lit_transfer.finetune.models import load_causal_lm, load_tokenizer
from lit_transfer.io import write_qa_folder


def _write(path, lines):
    path.write_text("".join(line + "\n" for line in lines))
    return path


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ('{"question": "q", "answer": "a"', "invalid JSON"),
        ('{"question": "q"}', "missing field 'answer'"),
        ('{"question": "q", "answer": ""}', "field 'answer' must be a non-empty string"),
        ('{"question": 3, "answer": "a"}', "field 'question' must be a non-empty string"),
        ('["q", "a"]', "expected a JSON object"),
        ('{"question": "q", "answer": "a", "context": 5}', "field 'context' must be a string"),
    ],
)
def test_bad_line_names_file_line_and_problem(tmp_path, line, problem):
    path = _write(tmp_path / "train.jsonl", ['{"question": "q1", "answer": "a1"}', "", line])
    with pytest.raises(DatasetError) as err:
        read_jsonl(path)
    assert f"{path}:3: {problem}" in str(err.value)


def test_empty_split_is_an_error(tmp_path):
    path = _write(tmp_path / "validation.jsonl", ["", "  "])
    with pytest.raises(DatasetError, match=r"validation\.jsonl: split is empty"):
        read_jsonl(path)


def test_missing_split_fails_at_setup_before_training(tmp_path, tiny_model):
    _write(tmp_path / "train.jsonl", ['{"question": "q", "answer": "a"}'])
    dm = QADataModule(str(tmp_path), tokenizer=tiny_model)
    with pytest.raises(DatasetError, match="no 'validation' split"):
        dm.setup("fit")


def test_reads_optional_fields(tmp_path):
    path = _write(tmp_path / "test.jsonl", ['{"question": "q", "answer": "a", "context": "c", "id": 7}'])
    assert read_jsonl(path) == [QAExample("q", "a", "c", "7")]


def test_datasets_save_to_disk_folder(tmp_path, qa_splits):
    import datasets

    dd = datasets.DatasetDict({k: datasets.Dataset.from_list(v) for k, v in qa_splits.items()})
    dd.save_to_disk(str(tmp_path / "ds"))
    examples = load_split(tmp_path / "ds", "validation")
    assert [e.answer for e in examples] == [r["answer"] for r in qa_splits["validation"]]
    assert load_split(tmp_path / "ds", "nope") is None


@pytest.mark.parametrize("fixture", ["tiny_model", "tiny_model_plain"])
def test_prompt_tokens_are_masked_and_answer_tokens_kept(request, fixture):
    tokenizer = load_tokenizer(request.getfixturevalue(fixture))
    formatter = PromptFormatter(tokenizer)
    assert formatter.uses_chat_template == (fixture == "tiny_model")
    example = QAExample("Where does Kalo live?", "Ostrel", context="Kalo moved last year.")
    prompt, answer = formatter(example)
    row = encode(example, formatter, max_length=256)
    n_prompt = len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
    assert row["labels"][:n_prompt] == [IGNORE_INDEX] * n_prompt
    assert row["labels"][n_prompt:] == row["input_ids"][n_prompt:]
    assert tokenizer.decode(row["input_ids"][n_prompt:]) == answer
    assert answer.strip().startswith("Ostrel") and answer.endswith(tokenizer.eos_token)
    assert "Kalo moved last year." in prompt
    if fixture == "tiny_model":
        assert prompt.startswith("<|user|>") and prompt.endswith("<|assistant|>\n")


def test_the_plain_template_tokenizes_answers_as_words_in_running_text(tiny_model_plain):
    """The space before the answer belongs to the answer, so its tokens are those the base model read the same
    words as in pretraining; ``qa-v1`` (the first experience's template) keeps the space in the prompt."""
    tokenizer = load_tokenizer(tiny_model_plain)
    example = QAExample("Where does Kalo live?", "Ostrel")
    prompt, answer = PromptFormatter(tokenizer)(example)
    assert prompt.endswith("\nAnswer:") and answer == " Ostrel" + tokenizer.eos_token
    words = tokenizer(" Ostrel", add_special_tokens=False)["input_ids"]
    in_text = tokenizer("Kalo lives in Ostrel", add_special_tokens=False)["input_ids"]
    assert in_text[-len(words) :] == words
    assert encode(example, PromptFormatter(tokenizer), 64)["input_ids"][-len(words) - 1 : -1] == words
    old_prompt, old_answer = PromptFormatter(tokenizer, "qa-v1")(example)
    assert (old_prompt, old_answer) == (prompt + " ", "Ostrel" + tokenizer.eos_token)
    with pytest.raises(ValueError, match="unknown prompt template 'chatml'"):
        PromptFormatter(tokenizer, "chatml")


def test_long_prompt_is_cut_from_the_left(tiny_model):
    formatter = PromptFormatter(load_tokenizer(tiny_model))
    example = QAExample("q " * 200, "Ostrel")
    row = encode(example, formatter, max_length=32)
    assert len(row["input_ids"]) == 32
    assert formatter.tokenizer.decode([t for t in row["labels"] if t != IGNORE_INDEX]).startswith("Ostrel")
    with pytest.raises(DatasetError, match="answer has"):
        encode(QAExample("q", "long answer " * 40), formatter, max_length=16)


def test_collator_pads_dynamically_and_counts_tokens():
    rows = [{"input_ids": [5, 6, 7], "labels": [-100, 6, 7]}, {"input_ids": [8], "labels": [8]}]
    batch = AnswerMaskedCollator(pad_token_id=0)(rows)
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert batch["labels"].tolist() == [[-100, 6, 7], [8, -100, -100]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert (int(batch["num_tokens"]), int(batch["num_padding_tokens"])) == (4, 2)


def test_packed_rows_do_not_attend_across_examples(tiny_model, qa_splits):
    """Logits of a packed row equal those of its examples run one by one (block-diagonal attention)."""
    tokenizer = load_tokenizer(tiny_model)
    formatter = PromptFormatter(tokenizer)
    rows = [encode(QAExample(**r), formatter, 64) for r in qa_splits["train"][:3]]
    packed = pack(rows, max_length=1000)
    assert len(packed) == 1 and packed[0]["position_ids"].count(0) == 3
    model = load_causal_lm(tiny_model).eval()
    batch = AnswerMaskedCollator(tokenizer.pad_token_id)(packed)
    with torch.no_grad():
        together = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"]).logits[0]
        apart = torch.cat([model(input_ids=torch.tensor([r["input_ids"]])).logits[0] for r in rows])
    torch.testing.assert_close(together, apart, atol=1e-5, rtol=1e-4)


def test_pack_respects_max_length():
    rows = [{"input_ids": [1] * n, "labels": [1] * n} for n in (5, 4, 3, 6)]
    packed = pack(rows, max_length=9)
    assert [len(r["input_ids"]) for r in packed] == [9, 9]


def test_shuffle_depends_on_seed_and_epoch_only(qa_dir, tiny_model):
    def order(seed, epoch):
        dm = QADataModule(str(qa_dir), tokenizer=tiny_model, seed=seed)
        dm.setup("fit")
        loader = dm.train_dataloader()
        loader.sampler.set_epoch(epoch)  # what Lightning does at every epoch start
        return list(loader.sampler)

    assert order(3, 0) == order(3, 0) != order(3, 1)
    assert order(3, 0) != order(4, 0)
    assert sorted(order(3, 0)) == list(range(len(order(3, 0))))


def test_datamodule_builds_loaders(tmp_path, tiny_model, qa_splits):
    data = write_qa_folder(qa_splits, tmp_path / "qa")
    dm = QADataModule(str(data), tokenizer=tiny_model, batch_size=4, packing=True, max_length=64)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert "position_ids" in batch and "attention_mask" not in batch
    val = next(iter(dm.val_dataloader()))
    assert val["input_ids"].shape[0] == 4 and "attention_mask" in val
    total_answers = sum(1 for b in dm.val_dataloader() for _ in b["input_ids"])
    assert total_answers == len(qa_splits["validation"])
    assert json.loads((data / "test.jsonl").read_text().splitlines()[0])["id"]
