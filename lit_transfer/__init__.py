"""lit_transfer: choose how to finetune an LLM on a new QA dataset from what finetuning taught on related ones."""

__version__ = "0.1.0"
