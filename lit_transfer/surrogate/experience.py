"""``ExperienceMean``: what the recorded runs say a config scores at each epoch, before the new task says anything.

A surrogate carries its meta-training runs (as buffers, so a checkpoint is self-contained) and predicts a config's
curve as the kernel-weighted mean of the recorded curves of nearby configs on similar tasks: a learned ARD kernel
on the encoded config times one on the normalized task features. For a recorded config with a narrow config
kernel this is its mean over the tasks (the "best on average" portfolio's ranking); for a config far from every
recorded one the kernel's total weight (``mass``) falls towards zero, and so does the evidence: the prediction
shrinks towards the task prior (what similar tasks reached over all their configs, with mean and spread), as in
empirical Bayes, with a prior weight chosen like the lengthscales. Without it, one run of one distant task decided
a far config's prediction alone (normalizing by a tiny mass): 0.95 for an SGD config recorded once on a
whole-sentence task, when asked about typing entities. While meta-training, a task's own family is left out of the
memory, as a new kind of task would be: the weights learn to generalize across families, not to look a task up.

What the new task shows reweighs the remembered tasks (a posterior over them): each is weighted by the task-feature
kernel times the likelihood of the values observed so far under what that task alone says of the configs run
(``log_likelihood``), so tasks that behaved like the new one speak for the configs it has not run, by different
amounts for different configs. The likelihood's noise scale is chosen leave-one-family-out like the lengthscales
(``choose_likelihood``), an infinite one (no reweighing) among the candidates: on experience v2 a few epochs of the
first configs do not tell which remembered tasks rank the others alike: no finite scale ranks better than no
reweighing by ``LIKELIHOOD_MARGIN`` on any of its 14 families, so none is used there.
"""

from __future__ import annotations

import contextlib
import itertools
import math
from collections.abc import Callable, Iterator, Sequence

import torch
from torch import nn

from lit_transfer.surrogate.forecast import HeldOut

CONFIG_SCALES = (0.02, 0.05, 0.1, 0.2, 0.4)  # lengthscales tried on the encoded config (numbers in [0, 1])
TASK_SCALES = (1.0, 2.0, 4.0, 1e3)  # on standardized task features; 1e3: every task weighs alike
PRIOR_MASSES = (1e-3, 0.3, 1.0, 3.0, 10.0)  # kernel weight given to the task prior (a recorded run near both counts 1)
GRAND_MASS = 1e-3  # pseudo-weight of the memory's grand mean in the task prior, for a task unlike every other
# noise scales of the likelihood that weighs remembered tasks by how well they predicted the new task's observed
# values; inf: observations do not reweigh them (the experience's order of the configs not run stays as it was)
LIKELIHOOD_SCALES = (0.03, 0.06, 0.1, 0.15, 0.25, math.inf)
SETTINGS = ((1, 1), (1, 3), (2, 2), (3, 3))  # (configs run, epochs each) the likelihood's scale is chosen on
# how much better (mean tau over the held-out families) a finite scale must rank than no reweighing to be chosen: on
# experience v2 the best finite scale of the multi_hop fold ranked 0.004 better there, and then cost its held-out
# task 0.22 of normalized regret at half the budget
LIKELIHOOD_MARGIN = 0.02


class ExperienceMean(nn.Module):
    """Kernel-weighted mean and variance of recorded curves; ``remember`` fills the memory.

    Args:
        config_dim: size of an encoded config.
        task_dim: number of task features.
        max_epochs: epochs of a curve.
    """

    def __init__(self, config_dim: int, task_dim: int, max_epochs: int) -> None:
        super().__init__()
        self.register_buffer("log_config_scale", torch.full((config_dim,), math.log(0.1)))
        self.register_buffer("log_task_scale", torch.full((task_dim,), math.log(1e3)))
        self.register_buffer("log_prior_mass", torch.tensor(math.log(PRIOR_MASSES[0])))
        self.register_buffer("likelihood_scale", torch.tensor(math.inf))
        self.register_buffer("configs", torch.zeros(0, config_dim))  # [M, C] distinct recorded configs
        self.register_buffer("tasks", torch.zeros(0, task_dim))  # [N, F] raw task features
        self.register_buffer("families", torch.zeros(0, dtype=torch.long))  # [N]
        self.register_buffer("values", torch.zeros(0, 0, max_epochs))  # [N, M, E] metric, 0 where not recorded
        self.register_buffer("recorded", torch.zeros(0, 0, max_epochs))  # [N, M, E] 1 where recorded

    def remember(
        self, configs: torch.Tensor, tasks: Sequence[str], families: Sequence[str],
        task_features: dict[str, torch.Tensor], curves: torch.Tensor,
    ) -> None:  # fmt: skip
        """Store runs: encoded ``configs`` [R, C] on ``tasks`` [R] with ``curves`` [R, E] (NaN: not measured)."""
        names = sorted(set(tasks))
        distinct, config_index = torch.unique(configs.float(), dim=0, return_inverse=True)
        task_index = torch.tensor([names.index(t) for t in tasks])
        family_names = sorted(set(families))
        family_of = dict(zip(tasks, families, strict=True))
        values = torch.zeros(len(names), len(distinct), curves.shape[1])
        recorded = torch.zeros_like(values)
        seen = ~torch.isnan(curves)
        values[task_index, config_index] = torch.nan_to_num(curves.float())
        recorded[task_index, config_index] = seen.float()
        device = self.configs.device
        self.configs = distinct.to(device)
        self.tasks = torch.stack([task_features[t] for t in names]).float().to(device)
        self.families = torch.tensor([family_names.index(family_of[t]) for t in names], device=device)
        self.values, self.recorded = values.to(device), recorded.to(device)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        """The memory's size is the checkpoint's: take its shapes before loading. A checkpoint from before the
        likelihood existed did not reweigh tasks: its scale is infinite."""
        state_dict.setdefault(prefix + "likelihood_scale", torch.tensor(math.inf))
        for name in ("configs", "tasks", "families", "values", "recorded"):
            if prefix + name in state_dict:
                setattr(self, name, torch.empty_like(state_dict[prefix + name], device=self.configs.device))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def family_of(self, task: torch.Tensor) -> torch.Tensor:
        """The family index of each row of raw task features that is a remembered task's, else -1."""
        if not len(self.tasks):
            return torch.full((len(task),), -1, dtype=torch.long, device=task.device)
        same = torch.isclose(task[:, None, :].float(), self.tasks[None], rtol=1e-5, atol=1e-6).all(-1)  # [Q, N]
        found = same.any(1)
        return torch.where(found, self.families[same.float().argmax(1)], torch.full_like(found, -1, dtype=torch.long))

    def forward(
        self, config: torch.Tensor, task: torch.Tensor, normalized_memory_tasks: torch.Tensor,
        normalized_task: torch.Tensor, exclude_family: torch.Tensor | None = None,
        log_likelihood: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
        """Mean [Q, E] and variance [Q, E] of the recorded curves near each query, and the kernel mass [Q] behind
        its final epoch; ``exclude_family`` [Q]: a family whose tasks the query may not use (-1: none);
        ``log_likelihood`` [N] or [Q, N]: how well each remembered task predicted what the new task has shown
        (``log_likelihood``), which reweighs the tasks before their curves are averaged."""
        if not len(self.tasks):  # nothing remembered: the untrained model
            zeros = torch.zeros(len(config), self.values.shape[-1], device=config.device)
            return zeros, zeros, torch.zeros(len(config), device=config.device)
        weight = self.task_weight(normalized_task, normalized_memory_tasks, exclude_family)
        if log_likelihood is not None:
            weight = posterior(weight, log_likelihood)
        return self.combine(weight, *self.tables(config))

    def task_weight(
        self, normalized_task: torch.Tensor, normalized_memory_tasks: torch.Tensor,
        exclude_family: torch.Tensor | None = None,
    ) -> torch.Tensor:  # fmt: skip
        """The prior weight [Q, N] of each remembered task for each query: the kernel on task features."""
        task_distance = (((normalized_task[:, None, :] - normalized_memory_tasks[None]) / self.log_task_scale.exp())
                         ** 2).sum(-1)  # fmt: skip
        weight = torch.exp(-task_distance)
        if exclude_family is not None:
            weight = weight * (self.families[None] != exclude_family[:, None])
        return weight

    def tables(self, config: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per query and remembered task, the config-kernel-weighted sums of its recorded values, their squares and
        its recorded counts [Q, N, E]: what any weighting of the tasks combines."""
        config_distance = (((config[:, None, :] - self.configs[None]) / self.log_config_scale.exp()) ** 2).sum(-1)
        config_weight = torch.exp(-config_distance)  # [Q, M]
        values = self.values * self.recorded
        return (
            torch.einsum("qm,nme->qne", config_weight, values),
            torch.einsum("qm,nme->qne", config_weight, values * self.values),
            torch.einsum("qm,nme->qne", config_weight, self.recorded),
        )

    def combine(
        self, weight: torch.Tensor, sums: torch.Tensor, squares: torch.Tensor, counts: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Mean, variance [Q, E] and final-epoch mass [Q] of the tasks weighted by ``weight`` [Q, N], shrunk
        towards their task prior (every run of those tasks, whatever its config) by the prior mass."""
        values = self.values * self.recorded
        count = self.recorded.sum((0, 1)).clamp_min(1.0)
        grand, grand_square = values.sum((0, 1)) / count, (values * self.values).sum((0, 1)) / count  # [E]
        runs = weight @ self.recorded.sum(1) + GRAND_MASS
        prior = (weight @ values.sum(1) + GRAND_MASS * grand) / runs
        prior_square = (weight @ (values * self.values).sum(1) + GRAND_MASS * grand_square) / runs
        mass = torch.einsum("qn,qne->qe", weight, counts)
        prior_mass = self.log_prior_mass.exp()
        total = mass + prior_mass
        mean = (torch.einsum("qn,qne->qe", weight, sums) + prior_mass * prior) / total
        square = (torch.einsum("qn,qne->qe", weight, squares) + prior_mass * prior_square) / total
        return mean, (square - mean**2).clamp_min(0.0), mass[:, -1]

    def per_task(self, sums: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        """What each remembered task alone says of each query [Q, N, E]: its recorded values near the query's
        config, shrunk towards that task's mean over all its configs by the prior mass."""
        values = self.values * self.recorded
        own_mean = values.sum(1) / self.recorded.sum(1).clamp_min(1.0)  # [N, E]
        prior_mass = self.log_prior_mass.exp()
        return (sums + prior_mass * own_mean[None]) / (counts + prior_mass)

    def log_likelihood(
        self, per_task: torch.Tensor, actual: torch.Tensor, epoch: torch.Tensor
    ) -> torch.Tensor:  # fmt: skip
        """How well each remembered task predicted the new task's observed values [..., N]: ``per_task`` [..., O, N,
        E] (``per_task`` of the observed configs), ``actual`` [..., O] their values at ``epoch`` [..., O] (0-based);
        a Gaussian likelihood with the chosen noise scale, summed over the observed configs."""
        scale = float(self.likelihood_scale)
        index = epoch[..., None, None].expand(*epoch.shape, per_task.shape[-2], 1)
        predicted = per_task.gather(-1, index).squeeze(-1)  # [..., O, N]
        if not math.isfinite(scale):
            return torch.zeros_like(predicted.sum(-2))
        return -(((actual[..., None] - predicted) / scale) ** 2).sum(-2) / 2

    def held_out(self, normalize: Callable[[torch.Tensor], torch.Tensor]) -> list[HeldOut]:
        """Each remembered task (with at least two complete curves and another family to learn from) as the
        experience of the other families predicts it: what a ``Forecast`` is fitted on."""
        memory = normalize(self.tasks)
        held_out = []
        for n, rows, curve, spread, mass in self._held_out_predictions(memory, complete=True):
            weight = self.task_weight(memory[n].expand(len(rows), -1), memory, self.families[n].expand(len(rows)))
            reweigh = self._reweigher(weight, *self.tables(self.configs[rows]))
            held_out.append(HeldOut(curve, spread, mass, self.values[n, rows], reweigh))
        return held_out

    @contextlib.contextmanager
    def thinned(self, thin_to: Sequence[int], seed: int, family: int | None = None) -> Iterator[torch.Tensor]:
        """The memory, while in the block, with each config it holds on more than one task kept on only ``k`` of
        those tasks, ``k`` drawn per config from ``thin_to`` (0: all of them; the draws seeded by ``seed``); the
        tasks of ``family`` are neither thinned nor counted. Yields how many tasks each config is kept on [M].

        Most configs a tuner weighs were recorded once, on one task, yet a held-out task's configs are either
        recorded on every other task (the shared ones) or on none, and for both the prior's weight hardly matters:
        chosen on them, it was the lightest tried for the v2 surrogate (and on 5 of the 14 folds leaving one family
        out), which predicts a config recorded once at its one result, as if it were known."""
        original = self.recorded
        held = original.amax(-1) > 0  # [N, M] which task holds which config
        if family is not None:
            held[self.families == family] = False
        kept = held.sum(0)
        if not thin_to:  # nothing to thin: no copy of the memory
            yield kept
            return
        thinned, generator = original.clone(), torch.Generator().manual_seed(seed)
        for m in (kept > 1).nonzero().squeeze(1).tolist():
            k = thin_to[int(torch.randint(len(thin_to), (1,), generator=generator))]
            if 0 < k < kept[m]:
                tasks = held[:, m].nonzero().squeeze(1)
                thinned[tasks[torch.randperm(len(tasks), generator=generator)[k:]], m] = 0.0
                kept[m] = k
        self.recorded = thinned
        try:
            yield kept
        finally:
            self.recorded = original

    def _reweigher(
        self, weight: torch.Tensor, sums: torch.Tensor, squares: torch.Tensor, counts: torch.Tensor
    ) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, ...]]:
        """For a held-out task's configs (``weight`` [R, N] and ``tables`` of them): given, per config, the configs
        [R, O] its task has observed, at which epochs [R, O] and with what values [R, O], the experience reweighed
        by them: mean and variance [R, E], mass [R], and the mean at each observed (config, epoch) [R, O]."""
        per_task = self.per_task(sums, counts)

        def reweigh(observed: torch.Tensor, epochs: torch.Tensor, actual: torch.Tensor) -> tuple[torch.Tensor, ...]:
            rows, others = observed.shape
            likelihood = self.log_likelihood(per_task[observed], actual, epochs)  # [R, N]
            weights = posterior(weight, likelihood)
            mean, variance, mass = self.combine(weights, sums, squares, counts)
            flat = observed.reshape(-1)
            at, _, _ = self.combine(weights.repeat_interleave(others, 0), sums[flat], squares[flat], counts[flat])
            return mean, variance, mass, at.gather(1, epochs.reshape(-1, 1)).reshape(rows, others)

        return reweigh

    def choose_scales(
        self, normalize: Callable[[torch.Tensor], torch.Tensor], score: Callable[[list, list], float],
        prior_masses: Sequence[float] = PRIOR_MASSES, thin_to: Sequence[int] = (),
    ) -> dict[str, float]:  # fmt: skip
        """Pick the config and task lengthscales that rank the final results of each remembered family's tasks best
        (mean ``score``, e.g. Kendall's tau) from the other families alone, as ``k`` of a nearest-neighbour baseline
        is chosen: what is chosen is what transfers to a new kind of task. Then the prior's weight that predicts
        those final results with the least squared error, with the memory ``thinned`` to ``thin_to`` (so that it
        also fits configs with little evidence): a ranking cannot choose it (configs with equal kernel mass keep
        their order however much they shrink), the levels can."""
        memory = normalize(self.tasks)
        self.log_prior_mass.fill_(math.log(min(prior_masses)))
        results = {}
        for config_scale, task_scale in itertools.product(CONFIG_SCALES, TASK_SCALES):
            self.log_config_scale.fill_(math.log(config_scale))
            self.log_task_scale.fill_(math.log(task_scale))
            scores = [score(predicted.tolist(), actual.tolist()) for predicted, actual in self._held_out_finals(memory)]
            results[(config_scale, task_scale)] = sum(scores) / len(scores) if scores else 0.0
        best = max(results, key=lambda k: (round(results[k], 6), k[1], k[0]))  # ties: the broader kernels
        self.log_config_scale.fill_(math.log(best[0]))
        self.log_task_scale.fill_(math.log(best[1]))
        errors = {}
        for prior_mass in prior_masses:
            self.log_prior_mass.fill_(math.log(prior_mass))
            pairs = list(self._held_out_finals(memory, thin_to))
            errors[prior_mass] = float(torch.cat([(p - a) ** 2 for p, a in pairs]).mean()) if pairs else 0.0
        prior = min(errors, key=lambda m: (round(errors[m], 8), m))  # ties: the lighter prior
        self.log_prior_mass.fill_(math.log(prior))
        return {"config_scale": best[0], "task_scale": best[1], "score": results[best], "prior_mass": prior,
                "squared_error": errors[prior]}  # fmt: skip

    def choose_likelihood(
        self, normalize: Callable[[torch.Tensor], torch.Tensor], score: Callable[[list, list], float],
        scales: Sequence[float] = LIKELIHOOD_SCALES,
    ) -> dict[float, float]:  # fmt: skip
        """Pick the likelihood's noise scale that best ranks the final results of the configs a remembered task has
        not run, after it ran its first configs (by the experience's own zero-shot order) for a few epochs
        (``SETTINGS``), each family predicted from the others: how much a new kind of task's first epochs should
        reweigh the remembered tasks. An infinite scale (no reweighing) is among the candidates and wins ties."""
        memory = normalize(self.tasks)
        cases = []
        for n, rows, curve, _, _ in self._held_out_predictions(memory, complete=True):
            normalized = memory[n].expand(len(rows), -1)
            weight = self.task_weight(normalized, memory, self.families[n].expand(len(rows)))
            sums, squares, counts = self.tables(self.configs[rows])
            order = curve[:, -1].argsort(descending=True)
            cases.append((n, rows, order, weight, sums, squares, counts))
        results = {}
        for scale in scales:
            self.likelihood_scale.fill_(scale)
            scores = []
            for n, rows, order, weight, sums, squares, counts in cases:
                per_task = self.per_task(sums, counts)
                for runs, epochs in SETTINGS:
                    if len(rows) < runs + 2 or epochs > self.values.shape[-1]:
                        continue
                    ran, rest = order[:runs], order[runs:]
                    at = torch.full((runs,), epochs - 1)
                    likelihood = self.log_likelihood(per_task[ran], self.values[n, rows[ran], epochs - 1], at)
                    mean, _, _ = self.combine(
                        posterior(weight[rest], likelihood), sums[rest], squares[rest], counts[rest]
                    )  # fmt: skip
                    scores.append(score(mean[:, -1].tolist(), self.values[n, rows[rest], -1].tolist()))
            results[scale] = sum(scores) / len(scores) if scores else 0.0
        best = max(results, key=lambda k: (round(results[k], 6), k))  # ties: the weaker update
        if math.inf in results and results[best] < results[math.inf] + LIKELIHOOD_MARGIN:
            best = math.inf  # a gain within the noise of a few held-out families is no reason to reweigh
        self.likelihood_scale.fill_(best)
        return results

    def _held_out_finals(self, memory: torch.Tensor, thin_to: Sequence[int] = ()):
        """Per remembered task: the final results of its configs as the other families predict them (their memory
        ``thinned`` to ``thin_to``), and as recorded."""
        for n, rows, curve, _, _ in self._held_out_predictions(memory, complete=False, thin_to=thin_to):
            yield curve[:, -1], self.values[n, rows, -1]

    def _held_out_predictions(self, memory: torch.Tensor, complete: bool, thin_to: Sequence[int] = ()):
        """Per remembered task with another family to learn from and at least two configs recorded (through every
        epoch if ``complete``, else at the last): its index, those configs' rows, and the other families' experience
        at them (mean, spread, mass), predicted with the memory ``thinned`` to ``thin_to``."""
        for n in range(len(self.tasks)):
            recorded = self.recorded[n].min(1).values if complete else self.recorded[n, :, -1]
            rows = (recorded > 0).nonzero().squeeze(1)
            if len(rows) < 2 or (self.families != self.families[n]).sum() == 0:
                continue
            task, normalized = self.tasks[n].expand(len(rows), -1), memory[n].expand(len(rows), -1)
            family = self.families[n].expand(len(rows))
            # most passes (the lengthscale search, the forecast's fit) thin nothing: no count of the memory then
            thin = self.thinned(thin_to, seed=n, family=int(self.families[n])) if thin_to else contextlib.nullcontext()
            with thin, torch.no_grad():
                curve, spread, mass = self(self.configs[rows], task, memory, normalized, family)
            yield n, rows, curve, spread, mass


def posterior(weight: torch.Tensor, log_likelihood: torch.Tensor) -> torch.Tensor:
    """Task weights [Q, N] times the likelihood of what the new task showed under each task, rescaled to the prior's
    total per query: the observations decide which remembered tasks speak, not how much evidence there is."""
    log_likelihood = log_likelihood.expand_as(weight)
    usable = weight > 0
    top = torch.where(usable, log_likelihood, torch.full_like(log_likelihood, -math.inf)).amax(1, keepdim=True)
    top = torch.where(torch.isfinite(top), top, torch.zeros_like(top))
    updated = weight * torch.exp(log_likelihood - top)
    total, kept = weight.sum(1, keepdim=True), updated.sum(1, keepdim=True)
    return torch.where(kept > 0, updated * total / kept.clamp_min(1e-30), weight)
