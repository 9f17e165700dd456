import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


import pytest

from lit_transfer.finetune.demo import corpus, toy_qa_examples, write_qa_folder
from lit_transfer.finetune.models import build_tiny_phi3


@pytest.fixture(scope="session")
def qa_splits():
    return toy_qa_examples(seed=1, people=12)


@pytest.fixture(scope="session")
def qa_dir(tmp_path_factory, qa_splits):
    return write_qa_folder(qa_splits, tmp_path_factory.mktemp("qa"))


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, qa_splits):
    """A random tiny Phi-3 with a chat-template tokenizer, saved and loaded by path like a hub model."""
    return str(build_tiny_phi3(tmp_path_factory.mktemp("tiny-phi3"), corpus(qa_splits), vocab_size=320))


@pytest.fixture(scope="session")
def tiny_model_plain(tmp_path_factory, qa_splits):
    """The same without a chat template, for the plain prompt path."""
    out = tmp_path_factory.mktemp("tiny-phi3-plain")
    return str(build_tiny_phi3(out, corpus(qa_splits), vocab_size=320, chat_template=False))
