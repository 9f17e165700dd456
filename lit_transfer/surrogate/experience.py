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
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence

import torch
from torch import nn

from lit_transfer.surrogate.forecast import HeldOut

CONFIG_SCALES = (0.02, 0.05, 0.1, 0.2, 0.4)  # lengthscales tried on the encoded config (numbers in [0, 1])
TASK_SCALES = (1.0, 2.0, 4.0, 1e3)  # on standardized task features; 1e3: every task weighs alike
PRIOR_MASSES = (1e-3, 0.3, 1.0, 3.0, 10.0)  # kernel weight given to the task prior (a recorded run near both counts 1)
GRAND_MASS = 1e-3  # pseudo-weight of the memory's grand mean in the task prior, for a task unlike every other


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
        """The memory's size is the checkpoint's: take its shapes before loading."""
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
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
        """Mean [Q, E] and variance [Q, E] of the recorded curves near each query, and the kernel mass [Q] behind
        its final epoch; ``exclude_family`` [Q]: a family whose tasks the query may not use (-1: none)."""
        if not len(self.tasks):  # nothing remembered: the untrained model
            zeros = torch.zeros(len(config), self.values.shape[-1], device=config.device)
            return zeros, zeros, torch.zeros(len(config), device=config.device)
        config_distance = (((config[:, None, :] - self.configs[None]) / self.log_config_scale.exp()) ** 2).sum(-1)
        task_distance = (((normalized_task[:, None, :] - normalized_memory_tasks[None]) / self.log_task_scale.exp())
                         ** 2).sum(-1)  # fmt: skip
        config_weight, task_weight = torch.exp(-config_distance), torch.exp(-task_distance)  # [Q, M], [Q, N]
        if exclude_family is not None:
            task_weight = task_weight * (self.families[None] != exclude_family[:, None])
        weight = task_weight[:, :, None] * config_weight[:, None, :]  # [Q, N, M]
        values = self.values * self.recorded
        squares = values * self.values
        mass = torch.einsum("qnm,nme->qe", weight, self.recorded)
        # the task prior: every recorded run of similar tasks, whatever its config (its mean and second moment)
        count = self.recorded.sum((0, 1)).clamp_min(1.0)
        grand, grand_square = values.sum((0, 1)) / count, squares.sum((0, 1)) / count  # [E]
        runs = torch.einsum("qn,ne->qe", task_weight, self.recorded.sum(1)) + GRAND_MASS
        prior = (torch.einsum("qn,ne->qe", task_weight, values.sum(1)) + GRAND_MASS * grand) / runs
        prior_square = (torch.einsum("qn,ne->qe", task_weight, squares.sum(1)) + GRAND_MASS * grand_square) / runs
        prior_mass = self.log_prior_mass.exp()
        total = mass + prior_mass
        mean = (torch.einsum("qnm,nme->qe", weight, values) + prior_mass * prior) / total
        square = (torch.einsum("qnm,nme->qe", weight, squares) + prior_mass * prior_square) / total
        return mean, (square - mean**2).clamp_min(0.0), mass[:, -1]

    def held_out(self, normalize: Callable[[torch.Tensor], torch.Tensor]) -> list[HeldOut]:
        """Each remembered task (with at least two complete curves and another family to learn from) as the
        experience of the other families predicts it: what a ``Forecast`` is fitted on."""
        predicted = self._held_out_predictions(normalize(self.tasks), complete=True)
        return [HeldOut(curve, spread, mass, self.values[n, rows]) for n, rows, curve, spread, mass in predicted]

    def choose_scales(
        self, normalize: Callable[[torch.Tensor], torch.Tensor], score: Callable[[list, list], float],
        prior_masses: Sequence[float] = PRIOR_MASSES,
    ) -> dict[str, float]:  # fmt: skip
        """Pick the config and task lengthscales that rank the final results of each remembered family's tasks best
        (mean ``score``, e.g. Kendall's tau) from the other families alone, as ``k`` of a nearest-neighbour baseline
        is chosen: what is chosen is what transfers to a new kind of task. Then the prior's weight that predicts
        those final results with the least squared error: a ranking cannot choose it (configs with equal kernel
        mass keep their order however much they shrink), the levels can."""
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
            pairs = list(self._held_out_finals(memory))
            errors[prior_mass] = float(torch.cat([(p - a) ** 2 for p, a in pairs]).mean()) if pairs else 0.0
        prior = min(errors, key=lambda m: (round(errors[m], 8), m))  # ties: the lighter prior
        self.log_prior_mass.fill_(math.log(prior))
        return {"config_scale": best[0], "task_scale": best[1], "score": results[best], "prior_mass": prior,
                "squared_error": errors[prior]}  # fmt: skip

    def _held_out_finals(self, memory: torch.Tensor):
        """Per remembered task: the final results of its configs as the other families predict them, and as
        recorded."""
        for n, rows, curve, _, _ in self._held_out_predictions(memory, complete=False):
            yield curve[:, -1], self.values[n, rows, -1]

    def _held_out_predictions(self, memory: torch.Tensor, complete: bool):
        """Per remembered task with another family to learn from and at least two configs recorded (through every
        epoch if ``complete``, else at the last): its index, those configs' rows, and the other families' experience
        at them (mean, spread, mass)."""
        for n in range(len(self.tasks)):
            recorded = self.recorded[n].min(1).values if complete else self.recorded[n, :, -1]
            rows = (recorded > 0).nonzero().squeeze(1)
            if len(rows) < 2 or (self.families != self.families[n]).sum() == 0:
                continue
            task, normalized = self.tasks[n].expand(len(rows), -1), memory[n].expand(len(rows), -1)
            family = self.families[n].expand(len(rows))
            with torch.no_grad():
                curve, spread, mass = self(self.configs[rows], task, memory, normalized, family)
            yield n, rows, curve, spread, mass
