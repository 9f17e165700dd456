import json
import re

import pytest

from lit_transfer.finetune.data import read_jsonl
from lit_transfer.metadataset.tasks import (
    DEFAULT_TASKS,
    FAMILIES,
    SUITE_V2,
    TaskSpec,
    select_tasks,
    suite_world,
    write_tasks,
)
from lit_transfer.metadataset.vocab import COLOURS, COUNTRIES, PETS
from lit_transfer.metadataset.world import World


def _name(question: str) -> str:
    return re.search(r"[A-Z][a-z]+ [A-Z][a-z]+", question).group(0)


@pytest.fixture(scope="module")
def world():
    return World(seed=0)


@pytest.fixture(scope="module")
def world_v2():
    return suite_world("v2")


def test_world_is_deterministic():
    a, b = World(seed=3), World(seed=3)
    assert a.people == b.people and a.corpus(seed=1)[:50] == b.corpus(seed=1)[:50]
    assert World(seed=4).people != a.people


@pytest.mark.parametrize("spec", DEFAULT_TASKS, ids=lambda s: s.name)
def test_tasks_are_deterministic_and_valid(world, spec, tmp_path):
    first, second = spec.generate(world), spec.generate(world)
    assert first == second
    assert [len(first[s]) for s in ("train", "validation", "test")] == [spec.train, spec.validation, spec.test]
    folder = spec.write(world, tmp_path / spec.name)
    for split in ("train", "validation", "test"):
        examples = read_jsonl(folder / f"{split}.jsonl")  # valid under the finetuning data contract
        assert all(e.answer.strip() for e in examples)
    ids = [r["id"] for rows in first.values() for r in rows]
    assert len(set(ids)) == len(ids)


def test_answers_are_right(world):
    """Spot-check each family's answers against the world."""
    by_name = {p.name: p for p in world.people}
    for row in TaskSpec("m", "multi_hop", train=50, validation=1, test=1).generate(world)["train"]:
        person = by_name[_name(row["question"])]
        friend = by_name[person.friend]
        expected = friend.colour if "friend" in row["question"] else world.company_city[person.employer]
        assert row["answer"] == expected
    for row in TaskSpec("a", "arithmetic", train=50, validation=1, test=1).generate(world)["train"]:
        words = row["question"].rstrip("?").split()
        a, op, b = int(words[2]), words[3], int(words[4])
        assert int(row["answer"]) == (a + b if op == "plus" else a - b)
    answers = [r["answer"] for r in TaskSpec("y", "yes_no", train=100, validation=1, test=1).generate(world)["train"]]
    assert 30 < answers.count("yes") < 70


def test_splits_ask_about_different_people(world):
    splits = TaskSpec("c", "closed_book", train=100, validation=50, test=50).generate(world)
    names = {s: {_name(r["question"]) for r in rows} for s, rows in splits.items()}
    assert not names["train"] & names["validation"] and not names["train"] & names["test"]


def test_suite_v1_covers_eight_families_with_different_sizes(tmp_path):
    assert len({s.family for s in DEFAULT_TASKS}) == 8
    assert len({s.train for s in DEFAULT_TASKS}) >= 4
    paths = write_tasks(tmp_path, DEFAULT_TASKS[:2])
    assert json.loads((paths[1] / "train.jsonl").read_text().splitlines()[0])["context"]


def test_suite_v2_is_broad():
    """>= 32 tasks of >= 12 families (every family), sizes spanning 8x, 256 validation and test examples."""
    assert len(SUITE_V2) >= 32 and len({s.name for s in SUITE_V2}) == len(SUITE_V2)
    assert {s.family for s in SUITE_V2} == set(FAMILIES) and len(FAMILIES) >= 12
    assert max(s.train for s in SUITE_V2) >= 8 * min(s.train for s in SUITE_V2)
    assert all(s.validation >= 256 and s.test >= 256 for s in SUITE_V2)
    assert all(s.name.startswith(s.family + "-") for s in SUITE_V2)  # names show family and variant
    assert len({s.seed for s in SUITE_V2}) == len(SUITE_V2)


@pytest.mark.parametrize("spec", SUITE_V2, ids=lambda s: s.name)
def test_v2_tasks_are_deterministic_and_valid(world_v2, spec, tmp_path):
    first = spec.generate(world_v2)
    assert first == spec.generate(world_v2)
    assert [len(first[s]) for s in ("train", "validation", "test")] == [spec.train, spec.validation, spec.test]
    folder = spec.write(world_v2, tmp_path / spec.name)
    for split in ("train", "validation", "test"):
        assert all(e.answer.strip() for e in read_jsonl(folder / f"{split}.jsonl"))
    answers = {r["answer"] for r in first["train"]}
    assert len(answers) >= 2  # never one answer for everything


def test_new_families_answer_right(world_v2):
    """Each new family's answers checked on known inputs from the world."""
    by_name = {p.name: p for p in world_v2.people}
    for row in TaskSpec("m", "multiple_choice", train=60, validation=1, test=1, level=2).generate(world_v2)["train"]:
        options = dict(o.split(") ") for o in re.findall(r"[A-E]\) [A-Za-z]+", row["context"]))
        kind = re.match(r"Which option is a (\w+)\?", row["question"]).group(1)
        pool = {"city": world_v2.city_country, "company": world_v2.company_city, "country": COUNTRIES}[kind]
        assert [v for v in options.values() if v in pool] == [row["answer"]]
    for row in TaskSpec("m1", "multiple_choice", train=60, validation=1, test=1).generate(world_v2)["train"]:
        options = dict(o.split(") ") for o in re.findall(r"[A-C]\) [A-Za-z]+", row["context"]))
        pool = PETS if "animal" in row["question"] else COLOURS
        assert [v for v in options.values() if v in pool] == [row["answer"]]
    for row in TaskSpec("y", "yes_no", train=60, validation=1, test=1, level=3).generate(world_v2)["train"]:
        numbers = re.match(r"Is (\d+) greater than (\d+)\?", row["question"])
        if numbers:
            truth = int(numbers.group(1)) > int(numbers.group(2))
        else:
            item, items = re.match(r"Is (\w+) in the list (.+)\?", row["question"]).groups()
            truth = item in items.split(", ")
        assert row["answer"] == ("yes" if truth else "no")
    for row in TaskSpec("h", "multi_hop", train=60, validation=1, test=1, level=3).generate(world_v2)["train"]:
        person = by_name[_name(row["question"].replace("best friend", "best_friend"))]
        friend = by_name[person.friend]
        if "colour" in row["question"]:
            assert row["context"] == f"The best friend of {person.name} is {friend.name}."
            assert row["answer"] == friend.colour
        else:
            assert row["context"] == f"{person.name} is employed by {person.employer}."
            assert row["answer"] == world_v2.company_city[person.employer]
    for row in TaskSpec("e", "entity_type", train=60, validation=1, test=1).generate(world_v2)["train"]:
        name = row["question"].removeprefix("Is ").split(" a person")[0]
        kind = "person" if name in by_name else "place" if name in world_v2.city_country else "company"
        assert row["answer"] == kind
    for row in TaskSpec("n", "negation", train=60, validation=1, test=1).generate(world_v2)["train"]:
        person = by_name[_name(row["question"])]
        a, b = re.match(r"Which of (\w+) or (\w+) is not", row["question"]).groups()
        assert row["answer"] in (a, b) and row["answer"] not in (person.pet, person.colour, person.occupation)
    for row in TaskSpec("n2", "negation", train=60, validation=1, test=1, level=2).generate(world_v2)["train"]:
        person = by_name[_name(row["question"])]
        claim = row["question"].rstrip("?").split()[-1]
        true = claim in (person.city, person.pet, person.occupation)
        assert row["answer"] == ("no" if true else "yes")
    for row in TaskSpec("s", "sentence", train=20, validation=1, test=1, level=2).generate(world_v2)["train"]:
        p = by_name[row["question"].removeprefix("Describe ").split(" in one")[0]]
        assert row["answer"] == f"{p.name} is a {p.occupation} who lives in {p.city} and keeps a {p.pet}."
    for row in TaskSpec("l1", "list_order", train=60, validation=1, test=1).generate(world_v2)["train"]:
        which, items = re.match(r"What is the (\w+) item in the list (.+)\?", row["question"]).groups()
        items = items.split(", ")
        assert (
            4 <= len(items) <= 7 and row["answer"] == {"first": items[0], "second": items[1], "last": items[-1]}[which]
        )
    for row in TaskSpec("l", "list_order", train=60, validation=1, test=1, level=2).generate(world_v2)["train"]:
        if row["question"].startswith("Sort"):
            numbers = [int(x) for x in re.findall(r"\d+", row["question"])]
            assert row["answer"] == ", ".join(map(str, sorted(numbers)))
    for row in TaskSpec("w", "word_edit", train=60, validation=1, test=1, level=2).generate(world_v2)["train"]:
        if row["question"].startswith("Replace"):
            old, new, word = re.match(r"Replace every (\w) with (\w) in (\w+)\.", row["question"]).groups()
            assert row["answer"] == word.replace(old, new)
    for row in TaskSpec("w1", "word_edit", train=60, validation=1, test=1).generate(world_v2)["train"]:
        word = re.search(r"(?:of|Write) (\w+)", row["question"]).group(1)
        assert row["answer"] == (word + "s" if row["question"].startswith("Add") else word[:-1])
    for row in TaskSpec("a", "arithmetic", train=60, validation=1, test=1, level=3).generate(world_v2)["train"]:
        a, b = map(int, re.findall(r"\d+", row["question"]))
        assert int(row["answer"]) == a * b


def test_bad_task_specs(world):
    with pytest.raises(ValueError, match="unknown task family"):
        TaskSpec("x", "poetry").generate(world)
    with pytest.raises(ValueError, match=r"levels 1\.\.3"):
        TaskSpec("x", "yes_no", level=4).generate(world)
    with pytest.raises(ValueError, match=r"levels 1\.\.2"):
        TaskSpec("x", "counting", level=3).generate(world)
    with pytest.raises(ValueError, match="needs 2000 examples"):
        TaskSpec("x", "arithmetic", train=1800, validation=100, test=100).generate(world)


def test_select_tasks_by_name_with_a_new_seed(world):
    (spec,) = select_tasks(["yes_no"], seed=3)
    assert select_tasks(["yes_no"])[0].seed == 0  # without a seed: the task as recorded
    shipped = next(s for s in DEFAULT_TASKS if s.name == "yes_no")
    assert (spec.family, spec.train, spec.seed) == (shipped.family, shipped.train, 3)
    # another seed: the same family and sizes, other examples
    new, old = spec.generate(world)["train"], shipped.generate(world)["train"]
    assert len(new) == len(old) and {e["question"] for e in new} != {e["question"] for e in old}
    assert [s.name for s in select_tasks()] == [s.name for s in DEFAULT_TASKS]
    with pytest.raises(ValueError, match=r"unknown task.*nope"):
        select_tasks(["nope"])
