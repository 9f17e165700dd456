"""Building experience on Ray: a local Ray instance on the loopback address, shut down by the test."""

import pytest
import ray
import yaml

from lit_transfer.metadataset.build import BuildPlan, build
from lit_transfer.metadataset.tasks import TaskSpec
from lit_transfer.space import DEFAULT_SPACE

TASKS = [TaskSpec("sums", "arithmetic", train=16, validation=8, test=8),
         TaskSpec("facts", "closed_book", train=16, validation=8, test=8)]  # fmt: skip


@pytest.fixture
def local_ray():
    ray.init(address="local", num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture
def space(tmp_path):
    spec = yaml.safe_load(DEFAULT_SPACE.read_text())
    spec["max_epochs"] = 2
    spec["hyperparameters"]["quantization"] = {"kind": "categorical", "choices": ["none"], "default": "none"}
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(spec))
    return str(path)


@pytest.mark.slow
def test_a_ray_build_records_what_the_local_build_records(tmp_path, tiny_model, space, local_ray):
    common = {"base_model": tiny_model, "tasks_dir": str(tmp_path / "tasks"), "tasks": TASKS, "space": space,
              "shared_configs": 2, "workers": 2, "max_length": 96, "eval_batch_size": 8}  # fmt: skip
    local = build(BuildPlan(out=str(tmp_path / "local" / "meta.sqlite"), **common), progress=False)
    remote = build(BuildPlan(out=str(tmp_path / "ray" / "meta.sqlite"), executor="ray", **common), progress=False)
    mine = {(r.task, r.config_key): r for r in local.runs()}
    theirs = {(r.task, r.config_key): r for r in remote.runs()}
    assert len(mine) == 4 and set(mine) == set(theirs)
    for key, run in mine.items():
        assert run.status == theirs[key].status
        for a, b in zip(run.curve, theirs[key].curve, strict=True):
            assert a["fidelity"] == b["fidelity"]
            for name, value in a["metrics"].items():
                assert theirs[key].curve and b["metrics"][name] == pytest.approx(value, abs=1e-6), (key, name)
