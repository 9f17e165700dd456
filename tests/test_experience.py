"""The experience a surrogate carries: what recorded runs say of a config, how sure that is, and which runs a
meta-training batch may use."""

import math

import pytest
import torch

from lit_transfer.surrogate.experience import CONFIG_SCALES, PRIOR_MASSES, TASK_SCALES, ExperienceMean
from lit_transfer.surrogate.metrics import tau


def remembered() -> ExperienceMean:
    """Three configs on three tasks of two families; config 0 is best on family a, config 2 on family b."""
    experience = ExperienceMean(config_dim=2, task_dim=1, max_epochs=2)
    configs = torch.tensor([[0.0, 0.0], [0.5, 0.5], [1.0, 1.0]] * 3)
    tasks = ["a-1"] * 3 + ["a-2"] * 3 + ["b-1"] * 3
    finals = [0.6, 0.4, 0.2, 0.5, 0.3, 0.1, 0.1, 0.2, 0.7]
    curves = torch.tensor([[f / 2, f] for f in finals])
    features = {"a-1": torch.tensor([0.0]), "a-2": torch.tensor([0.2]), "b-1": torch.tensor([5.0])}
    experience.remember(configs, tasks, [t.split("-")[0] for t in tasks], features, curves)
    experience.log_config_scale.fill_(math.log(0.02))
    return experience


def ask(experience, configs, task, exclude=None):
    memory = experience.tasks
    queries = torch.tensor(configs)
    return experience(queries, task.expand(len(queries), -1), memory, task.expand(len(queries), -1), exclude)


def test_a_recorded_config_gets_its_mean_curve_over_the_tasks_and_a_far_one_little_mass():
    experience = remembered()
    mean, spread, mass = ask(experience, [[0.0, 0.0], [1.0, 1.0], [0.25, 0.75]], torch.tensor([0.1]))
    assert mean[0].tolist() == pytest.approx([0.2, 0.4], abs=1e-3)  # (0.6 + 0.5 + 0.1) / 3, halved at epoch 1
    assert mean[1, 1].item() == pytest.approx(1.0 / 3, abs=1e-3)
    assert spread[0, 1].item() == pytest.approx(torch.tensor([0.6, 0.5, 0.1]).var(unbiased=False).item(), abs=1e-3)
    assert mass[:2].tolist() == pytest.approx([3.0, 3.0], abs=1e-3) and mass[2].item() < 1e-6


def test_a_family_left_out_is_not_used_and_similar_tasks_weigh_more():
    experience = remembered()
    family_b = experience.family_of(torch.tensor([[5.0], [0.2], [9.0]]))
    assert family_b.tolist() == [1, 0, -1]  # b-1's family, a-2's, and a task it never saw
    mean, _, _ = ask(experience, [[0.0, 0.0]], torch.tensor([5.0]), exclude=torch.tensor([1]))
    assert mean[0, 1].item() == pytest.approx(0.55, abs=1e-3)  # family a only
    experience.log_task_scale.fill_(math.log(1.0))
    near_b, _, _ = ask(experience, [[0.0, 0.0], [1.0, 1.0]], torch.tensor([5.0]))
    assert near_b[1, 1] > near_b[0, 1]  # on a task like b-1, config 2 ranks first


def test_a_far_config_is_the_task_prior_not_the_one_distant_run_nearest_to_it():
    """Far from every recorded config, the prediction is what similar tasks reached over all their configs, with
    their spread; one run of a distant task near the config does not decide it."""
    experience = remembered()
    experience.log_task_scale.fill_(math.log(1.0))
    experience.log_prior_mass.fill_(math.log(1.0))
    on_a = torch.tensor([0.1])  # a task like a-1 and a-2, unlike b-1
    mean, spread, mass = ask(experience, [[0.25, 0.75], [0.0, 0.0]], on_a)
    a_finals = torch.tensor([0.6, 0.4, 0.2, 0.5, 0.3, 0.1])
    assert mass[0].item() < 1e-6
    assert mean[0, 1].item() == pytest.approx(a_finals.mean().item(), abs=0.02)
    assert spread[0, 1].item() == pytest.approx(a_finals.var(unbiased=False).item(), abs=0.02)
    # a recorded config, near two similar tasks, keeps most of their mean
    assert mean[1, 1].item() == pytest.approx((2 * 0.55 + 0.35) / 3, abs=0.02)
    # a config only a distant task ran: without the prior its one run decides; with it, the similar tasks do
    lone = ExperienceMean(config_dim=2, task_dim=1, max_epochs=2)
    configs = torch.tensor([[0.0, 0.0], [0.5, 0.5], [0.0, 0.0], [0.5, 0.5], [0.0, 0.0], [1.0, 1.0]])
    tasks = ["a-1", "a-1", "a-2", "a-2", "b-1", "b-1"]
    finals = torch.tensor([0.4, 0.2, 0.3, 0.1, 0.1, 0.9])
    features = {"a-1": torch.tensor([0.0]), "a-2": torch.tensor([0.2]), "b-1": torch.tensor([5.0])}
    lone.remember(configs, tasks, [t[0] for t in tasks], features, torch.stack([finals / 2, finals], 1))
    lone.log_config_scale.fill_(math.log(0.02))
    lone.log_task_scale.fill_(math.log(1.0))
    lone.log_prior_mass.fill_(math.log(1e-15))
    alone, _, _ = ask(lone, [[1.0, 1.0]], on_a)
    lone.log_prior_mass.fill_(math.log(1.0))
    shrunk, spread, _ = ask(lone, [[1.0, 1.0]], on_a)
    assert alone[0, 1].item() == pytest.approx(0.9, abs=1e-3)
    assert shrunk[0, 1].item() == pytest.approx(finals[:4].mean().item(), abs=0.02)
    assert spread[0, 1].item() == pytest.approx(finals[:4].var(unbiased=False).item(), abs=0.02)


def test_scales_are_chosen_by_ranking_each_family_from_the_others():
    experience = remembered()
    choice = experience.choose_scales(lambda t: t, tau)
    assert choice["config_scale"] in CONFIG_SCALES and choice["task_scale"] in TASK_SCALES
    assert choice["prior_mass"] in PRIOR_MASSES
    assert experience.log_prior_mass.item() == pytest.approx(math.log(choice["prior_mass"]))
    errors = {}  # the prior's weight: the least squared error of the held-out finals (a ranking cannot tell)
    for mass in PRIOR_MASSES:
        experience.log_prior_mass.fill_(math.log(mass))
        pairs = list(experience._held_out_finals(experience.tasks))
        errors[mass] = float(torch.cat([(p - a) ** 2 for p, a in pairs]).mean())
    assert errors[choice["prior_mass"]] == pytest.approx(min(errors.values()))
    assert choice["squared_error"] == pytest.approx(min(errors.values()))
    assert experience.log_config_scale[0].item() == pytest.approx(math.log(choice["config_scale"]))
    assert -1.0 <= choice["score"] <= 1.0


def test_the_memory_travels_in_the_state_dict():
    experience = remembered()
    copy = ExperienceMean(config_dim=2, task_dim=1, max_epochs=2)
    copy.load_state_dict(experience.state_dict())
    assert torch.equal(copy.values, experience.values) and torch.equal(copy.families, experience.families)
    empty = ExperienceMean(config_dim=2, task_dim=1, max_epochs=2)
    mean, _, mass = ask(empty, [[0.0, 0.0]], torch.tensor([0.0]))
    assert mean.abs().sum() == 0 and mass.sum() == 0  # nothing remembered, nothing claimed


def _two_kinds() -> ExperienceMean:
    """Twelve tasks of six families and two kinds no task feature tells apart: on kind A the probe config p scores
    0.8, x 0.9 and y 0.1; on kind B p scores 0.2, x 0.1 and y 0.9. Over all tasks x and y tie."""
    p, x, y = [0.0, 0.0], [1.0, 0.0], [0.0, 1.0]
    configs, tasks, families, curves = [], [], [], []
    for i in range(12):
        kind = "A" if i % 2 == 0 else "B"
        finals = {"A": (0.8, 0.9, 0.1), "B": (0.2, 0.1, 0.9)}[kind]
        for config, final in zip((p, x, y), finals, strict=True):
            configs.append(config)
            tasks.append(f"t{i}")
            families.append(f"f{i // 2}")
            curves.append([final / 2, final])
    memory = ExperienceMean(2, 1, 2)
    features = {f"t{i}": torch.tensor([1.0]) for i in range(12)}
    memory.remember(torch.tensor(configs), tasks, families, features, torch.tensor(curves))
    return memory


def test_what_the_task_shows_reweighs_the_remembered_tasks_and_reranks_the_configs_it_has_not_run():
    memory = _two_kinds()
    normalize = lambda t: t  # noqa: E731
    chosen = memory.choose_likelihood(normalize, tau)
    assert math.isfinite(float(memory.likelihood_scale)) and chosen[float(memory.likelihood_scale)] > chosen[math.inf]
    queries = torch.tensor([[1.0, 0.0], [0.0, 1.0]])  # x and y, not run on the new task
    new_task = torch.tensor([[1.0], [1.0]])
    before, _, _ = memory(queries, new_task, memory.tasks, new_task)
    assert before[0, -1] == pytest.approx(before[1, -1])  # before any observation: a tie
    # the new task ran p for both epochs and it scored 0.2: the tasks of kind B speak now, and y is ahead of x
    sums, _, counts = memory.tables(torch.tensor([[0.0, 0.0]]))
    likelihood = memory.log_likelihood(memory.per_task(sums, counts), torch.tensor([0.2]), torch.tensor([1]))
    after, _, _ = memory(queries, new_task, memory.tasks, new_task, log_likelihood=likelihood)
    assert after[1, -1] > 0.8 and after[0, -1] < 0.2
    # with an infinite scale (what a checkpoint from before the likelihood loads as), nothing moves
    memory.likelihood_scale.fill_(math.inf)
    likelihood = memory.log_likelihood(memory.per_task(sums, counts), torch.tensor([0.2]), torch.tensor([1]))
    unmoved, _, _ = memory(queries, new_task, memory.tasks, new_task, log_likelihood=likelihood)
    torch.testing.assert_close(unmoved, before)


def test_reweighing_must_rank_clearly_better_to_be_chosen(monkeypatch):
    """A finite scale is chosen only when it ranks better than no reweighing by LIKELIHOOD_MARGIN (a gain within
    the noise of a few held-out families once cost a held-out task dearly)."""
    from lit_transfer.surrogate import experience

    memory = _two_kinds()
    gains = memory.choose_likelihood(lambda t: t, tau)
    gain = max(gains.values()) - gains[math.inf]
    monkeypatch.setattr(experience, "LIKELIHOOD_MARGIN", gain + 0.01)
    memory.choose_likelihood(lambda t: t, tau)
    assert float(memory.likelihood_scale) == math.inf


def _noisy_shared(families: int = 8, shared: int = 6) -> ExperienceMean:
    """One task per family; ``shared`` configs run on every task, where each scores at random (a config's result on
    one task says nothing of another), and one config of its own per task."""
    generator = torch.Generator().manual_seed(0)
    configs, tasks, names, curves = [], [], [], []
    for f in range(families):
        own = [[0.9, 0.1 * f]]  # far from the shared ones, and from each other's
        for config in [[0.1 * c, 0.0] for c in range(shared)] + own:
            final = float(torch.rand(1, generator=generator))
            configs.append(config)
            tasks.append(f"t{f}")
            names.append(f"f{f}")
            curves.append([final / 2, final])
    memory = ExperienceMean(2, 1, 2)
    memory.remember(
        torch.tensor(configs), tasks, names, {f"t{f}": torch.tensor([0.0]) for f in range(families)},
        torch.tensor(curves),
    )  # fmt: skip
    memory.log_config_scale.fill_(math.log(0.02))
    return memory


def test_thinning_keeps_each_config_of_several_tasks_on_as_many_as_drawn_then_restores_the_memory():
    memory = _noisy_shared()
    before = memory.recorded.clone()
    held = before.amax(-1) > 0  # [task, config]
    others = torch.arange(len(memory.tasks)) != 3  # task 3's family is held out: neither thinned nor counted
    with memory.thinned((1,), seed=3, family=3) as kept:
        now = memory.recorded.amax(-1) > 0
        for m in range(len(memory.configs)):
            expected = 1 if held[others, m].sum() > 1 else int(held[others, m].sum())
            assert int(now[others, m].sum()) == expected == int(kept[m]), m
        assert torch.equal(memory.recorded[3], before[3])  # the held-out task's own runs are its truth
        first = memory.recorded.clone()
    assert torch.equal(memory.recorded, before)
    with memory.thinned((1,), seed=3, family=3):
        assert torch.equal(memory.recorded, first)  # seeded: the same draw every fit
    with memory.thinned((0,), seed=3) as kept:
        assert torch.equal(memory.recorded, before) and kept[:6].tolist() == [8] * 6  # 0: all of them
    with memory.thinned((), seed=3):
        assert torch.equal(memory.recorded, before)


def test_a_config_recorded_once_is_shrunk_to_the_prior_once_thinning_shows_one_task_says_little():
    """Where a config's result on one task says nothing of another, its mean over seven tasks is already near the
    prior and any prior weight predicts the held-out finals alike: the lightest wins. Only thinned to one task does
    the fit see that one result must be shrunk, and a config recorded once is then predicted near the prior."""
    memory = _noisy_shared()
    plain = memory.choose_scales(lambda t: t, tau)
    thinned = memory.choose_scales(lambda t: t, tau, thin_to=(1,))
    assert thinned["prior_mass"] > plain["prior_mass"]
    # config 0 as if recorded once, on task 0, where it scored 0.95, with a kernel that lets no other config speak
    memory.recorded[1:, 0] = 0.0
    memory.values[0, 0] = torch.tensor([0.5, 0.95])
    memory.log_config_scale.fill_(math.log(0.02))
    task, config = torch.tensor([[0.0]]), torch.tensor([[0.0, 0.0]])
    once, _, mass = memory(config, task, memory.tasks, task)
    prior = (memory.values[..., -1] * memory.recorded[..., -1]).sum() / memory.recorded[..., -1].sum()
    assert mass.item() == pytest.approx(1.0, abs=1e-3)
    assert abs(once[0, -1] - prior) < 0.5 * abs(0.95 - prior)
    memory.log_prior_mass.fill_(math.log(plain["prior_mass"]))
    as_known, _, _ = memory(config, task, memory.tasks, task)
    assert as_known[0, -1].item() == pytest.approx(0.95, abs=0.01)  # unthinned: predicted as if it were known
