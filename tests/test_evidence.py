"""The experience behind a suggestion: nearest recorded tasks and runs."""

from lit_transfer.metadataset.store import MetaDataset
from lit_transfer.metadataset.summary import final_score
from lit_transfer.space import SearchSpace
from lit_transfer.tune.evidence import Experience


def test_a_recorded_run_is_its_own_nearest_experience(synthetic_metadataset):
    experience = Experience([synthetic_metadataset], SearchSpace.from_yaml())
    with MetaDataset(synthetic_metadataset) as store:
        features = store.tasks()
        run = next(r for r in store.runs("t2") if r.config_key != SearchSpace.from_yaml().default().key())
    assert experience.similar_tasks(features["t2"])[0] == ("t2", 0.0)
    nearest = experience.behind(run.config, features["t2"], k=3)
    assert nearest[0]["task"] == "t2" and nearest[0]["final"] == final_score(run)
    assert nearest[0]["task_distance"] == nearest[0]["config_distance"] == 0.0
    assert [n["task_distance"] + n["config_distance"] for n in nearest] == sorted(
        n["task_distance"] + n["config_distance"] for n in nearest
    )
    far = dict(features["t2"], log_train_size=features["t2"]["log_train_size"] + 10.0)
    assert experience.similar_tasks(far)[0][1] > 1.0  # a task unlike any recorded one is far from all
