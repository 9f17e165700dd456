"""A two-node Ray cluster on this machine (both nodes on 127.0.0.1, shut down by the test): a build spread over
its nodes (one CPU each, one run each at a time) records every run."""

import pytest
import ray
from test_ray import LOOPBACK, build_common, two_epoch_space

from lit_transfer.metadataset.build import BuildPlan, build

# one Ray instance at a time on this machine: the Ray modules share one pytest-xdist worker
pytestmark = pytest.mark.xdist_group("ray")


@pytest.fixture
def space(tmp_path):
    return two_epoch_space(tmp_path)


@pytest.fixture
def two_nodes():
    """A head and a worker node on this machine, both on 127.0.0.1."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "node_ip_address": LOOPBACK, "include_dashboard": False},
    )  # fmt: skip
    cluster.add_node(num_cpus=1, node_ip_address=LOOPBACK)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False)
    yield cluster
    ray.shutdown()
    cluster.shutdown()


@pytest.mark.slow
def test_a_build_on_a_two_node_cluster_records_every_run(tmp_path, tiny_model, space, two_nodes):
    common = build_common(tmp_path, tiny_model, space)  # two workers of one CPU each: one on each node
    store = build(BuildPlan(out=str(tmp_path / "ray" / "meta.sqlite"), executor="ray", **common), progress=False)
    nodes = {node["NodeManagerAddress"] for node in ray.nodes() if node["Alive"]}
    assert len(ray.nodes()) == 2 and nodes == {LOOPBACK}  # two nodes, nothing but the loopback address
    runs = list(store.runs())
    assert len(runs) == 4 and all(r.status == "ok" and len(r.curve) == 3 for r in runs)
