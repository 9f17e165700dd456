import random
import re

from lit_transfer.metadataset.qa_text import asked_people, qa_text
from lit_transfer.metadataset.tasks import SUITE_V2, suite_world


def test_qa_text_is_deterministic_and_in_the_plain_template():
    world = suite_world("v2")
    a = qa_text(world, random.Random(1), 300)
    assert a == qa_text(world, random.Random(1), 300)
    for doc in a:
        assert re.fullmatch(r"(Question: .+\nAnswer: .+)|(Q: .+\nA: .+)", doc), doc


def test_qa_text_asks_only_about_half_of_the_people_and_answers_right():
    world = suite_world("v2")
    asked = {p.name for p in asked_people(world)}
    others = {p.name for p in world.people} - asked
    assert len(asked) == (len(world.people) + 1) // 2
    docs = qa_text(world, random.Random(2), 2000, world_share=1.0)
    named = {name for doc in docs for name in asked | others if f" {name}?" in doc or f" {name}\n" in doc}
    assert named and named <= asked
    for doc in docs:
        match = re.match(r"(?:Question|Q): What is the job of (.+)\?\n(?:Answer|A): (.+)", doc)
        if match:
            assert world.person(match.group(1)).occupation == match.group(2)


def test_qa_text_never_asks_a_task_question(tmp_path):
    world = suite_world("v2")
    docs = qa_text(world, random.Random(3), 3000)
    questions = {doc.split("\n")[0].split(": ", 1)[1] for doc in docs}
    for spec in SUITE_V2:
        for split in spec.generate(world).values():
            assert not questions & {example["question"] for example in split}, spec.name
