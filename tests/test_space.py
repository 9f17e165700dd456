import numpy as np
import pytest
import yaml

from lit_transfer.space import DEFAULT_SPACE, Hyperparameter, PipelineConfig, SearchSpace, config_key


@pytest.fixture(scope="module")
def space():
    return SearchSpace.from_yaml(DEFAULT_SPACE)


def test_default_is_the_documented_recipe(space):
    default = space.default()
    assert default["learning_rate"] == 2e-4 and default["lora_rank"] == 8 and default["adapter"] == "lora"
    assert default.module_args()["lora_alpha"] == 16.0
    assert default.trainer_args() == {"gradient_clip_val": 1.0} and default.data_args() == {"batch_size": 8}


def test_sampling_is_seeded_valid_and_spread(space):
    a, b, c = space.sample(64, seed=0), space.sample(64, seed=0), space.sample(64, seed=1)
    assert [x.key() for x in a] == [x.key() for x in b] != [x.key() for x in c]
    for config in a:
        space.config(config.values)  # every sample is valid
    assert {x["optimizer"] for x in a} == {"adamw", "adafactor", "sgd"}
    lrs = np.log10([x["learning_rate"] for x in a])
    assert lrs.min() < -4 and lrs.max() > -2  # the log range is covered, not bunched


def test_a_pipeline_has_one_key_however_it_is_held(space):
    """States, stores and trial folders are keyed by ``config_key``: a dict in any order, a ``PipelineConfig``
    and its ``key()`` give the same key, and any other value another one."""
    config = space.default()
    shuffled = dict(reversed(list(config.values.items())))
    assert config_key(shuffled) == config_key(config) == config.key() == PipelineConfig(shuffled).key()
    assert config_key({**shuffled, "learning_rate": 0.5}) != config.key()
    assert config.key().startswith("adapter='")  # the recorded keys' form: name=repr(value), sorted, ';'-joined


def test_encoding(space):
    config = space.default()
    vector = space.encode(config)
    assert vector.shape == (len(space.feature_names()),) and vector.min() >= 0 and vector.max() <= 1
    names = space.feature_names()
    assert vector[names.index("adapter=lora")] == 1 and vector[names.index("adapter=dora")] == 0
    lr = vector[names.index("learning_rate")]
    assert lr == pytest.approx((np.log(2e-4) - np.log(1e-5)) / (np.log(1e-1) - np.log(1e-5)))


def test_bad_configs_and_spaces_are_refused(space, tmp_path):
    with pytest.raises(ValueError, match="unknown hyperparameter"):
        space.config({**space.default().values, "momentum": 0.9})
    with pytest.raises(ValueError, match="missing hyperparameter"):
        space.config({"adapter": "lora"})
    with pytest.raises(ValueError, match="lora_rank=3 is not one of"):
        space.config({**space.default().values, "lora_rank": 3})
    with pytest.raises(ValueError, match="default"):
        Hyperparameter("x", "ordinal", default=5, choices=(1, 2))
    bad = tmp_path / "space.yaml"
    bad.write_text(yaml.safe_dump({"hyperparameters": {"x": {"kind": "float", "lo": 0}}}))
    with pytest.raises(ValueError, match="malformed search space"):
        SearchSpace.from_yaml(bad)


def test_fit_config_drives_the_finetuning_classes(space):
    from lit_transfer.finetune.run import RunSettings, fit_config

    config = space.sample(1, seed=3)[0]
    fit = fit_config(config, "d", RunSettings("m", max_epochs=8, seed=2), "runs/x")
    init = fit["model"]["init_args"]
    assert init["schedule_epochs"] == 8 and init["seed"] == 2 and "lora_alpha_ratio" not in init
    assert fit["data"]["init_args"]["batch_size"] == config["batch_size"]
    import inspect

    from lit_transfer.finetune import FinetuneModule, QADataModule

    assert set(init) <= set(inspect.signature(FinetuneModule).parameters)
    assert set(fit["data"]["init_args"]) <= set(inspect.signature(QADataModule).parameters)
