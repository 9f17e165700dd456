"""The shipped v2 base model loads offline through the same from_pretrained path, and its card reports each skill."""

import json

from lit_transfer.finetune.models import load_causal_lm, load_tokenizer
from lit_transfer.metadataset.skills import SKILLS
from lit_transfer.resources import ASSETS

MODEL = ASSETS / "models" / "world-phi3-v2"


def test_v2_base_model_loads_offline_and_reports_its_probes():
    model, tokenizer = load_causal_lm(str(MODEL)), load_tokenizer(str(MODEL))
    assert sum(p.numel() for p in model.parameters()) < 5_000_000 and tokenizer.chat_template is None
    assert (MODEL / "model.safetensors").stat().st_size < 20_000_000
    card = json.loads((MODEL / "pretraining.json").read_text())
    assert set(SKILLS) <= set(card["probes"]) and all(0.0 <= v <= 1.0 for v in card["probes"].values())
    assert card["probes"]["world: occupation"] > 0.5  # it knows the world its tasks ask about
    # it answers questions in the plain template, also about people no question-answer text asked about
    assert card["probes"]["QA job, people not asked"] > 0.1
    assert card["corpus_documents"]["question-answer text"] > 0 and card["stage1"]["steps"] > 0
    readme = (MODEL / "README.md").read_text()
    assert all(f"| {name} |" in readme for name in card["probes"])
