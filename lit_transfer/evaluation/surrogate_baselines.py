"""What a meta-learned surrogate has to beat on a new task.

``mean_config_scores``: a config's average final result on the other tasks (no model at all).
``PlainGP``: an exact GP with an ARD Matérn kernel on the very inputs the deep-kernel GP gets, conditioned on a
bounded random subset of the meta-training examples plus the new task's observations (no feature learning).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import gpytorch
import torch

from lit_transfer.surrogate.data import CurveExamples


def mean_config_scores(finals: Mapping[str, Mapping[str, float]], task: str, config_keys: Sequence[str]) -> list[float]:
    """Each config's mean final metric over the tasks other than ``task`` (``finals[task][config_key]``)."""
    others = [scores for name, scores in finals.items() if name != task]
    means = []
    for key in config_keys:
        seen = [scores[key] for scores in others if key in scores]
        means.append(sum(seen) / len(seen) if seen else float("nan"))
    return means


def flat_inputs(
    batch: Mapping[str, torch.Tensor], normalize_task: Callable[[torch.Tensor], torch.Tensor]
) -> torch.Tensor:
    """All inputs side by side: config, normalized task features, masked prefix, mask, fidelity and prefix length."""
    epochs = batch["mask"].shape[1]
    steps = torch.stack([batch["fidelity"], batch["mask"].sum(1)], dim=1) / epochs
    prefix = (batch["prefix"] * batch["mask"].unsqueeze(-1)).flatten(1)
    task = normalize_task(batch["task"])
    return torch.cat([batch["config"], task, prefix, batch["mask"], steps], dim=1)


class _ExactGP(gpytorch.models.ExactGP):
    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        super().__init__(x, y, gpytorch.likelihoods.GaussianLikelihood())
        self.mean_module = gpytorch.means.ConstantMean()
        self.covar_module = gpytorch.kernels.ScaleKernel(gpytorch.kernels.MaternKernel(nu=2.5, ard_num_dims=x.shape[1]))

    def forward(self, x: torch.Tensor) -> gpytorch.distributions.MultivariateNormal:
        return gpytorch.distributions.MultivariateNormal(self.mean_module(x), self.covar_module(x))


def fit_exact_gp(x: torch.Tensor, y: torch.Tensor, iterations: int = 150, seed: int = 0) -> _ExactGP:
    """An exact GP (Matérn 5/2, one length scale per input) fitted to ``x``, ``y`` by marginal likelihood; in eval
    mode."""
    with torch.random.fork_rng():  # beyond 800 points gpytorch draws random probe vectors: ours, seeded
        torch.manual_seed(seed)
        model = _ExactGP(x, y)
        model.train()
        optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
        mll = gpytorch.mlls.ExactMarginalLogLikelihood(model.likelihood, model)
        for _ in range(iterations):
            optimizer.zero_grad()
            (-mll(model(x), y)).backward()
            optimizer.step()
    return model.eval()


class PlainGP:
    """A GP without a learned feature extractor, fitted by marginal likelihood on ``max_points`` examples."""

    def __init__(
        self, examples: CurveExamples, normalize_task: Callable[[torch.Tensor], torch.Tensor],
        max_points: int = 1024, iterations: int = 150, seed: int = 0,
    ) -> None:  # fmt: skip
        self.normalize_task = normalize_task
        generator = torch.Generator().manual_seed(seed)
        chosen = torch.randperm(len(examples), generator=generator)[:max_points].tolist()
        batch = torch.utils.data.default_collate([examples[i] for i in chosen])
        self.x, self.y = flat_inputs(batch, normalize_task), batch["target"]
        self.seed = seed
        self.model = fit_exact_gp(self.x, self.y, iterations, seed)

    def predict(
        self, inputs: Mapping[str, torch.Tensor], context: Mapping[str, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.x, self.y
        if context is not None:
            x = torch.cat([x, flat_inputs(context, self.normalize_task)])
            y = torch.cat([y, context["target"]])
        self.model.set_train_data(x, y, strict=False)
        with torch.no_grad(), torch.random.fork_rng():
            torch.manual_seed(self.seed)
            prediction = self.model.likelihood(self.model(flat_inputs(inputs, self.normalize_task)))
        return prediction.mean, prediction.variance.sqrt()


class NearestConfigs:
    """A config's prediction is the mean final result of its ``k`` nearest recorded configs (each config's result
    averaged over the tasks it ran on), by Euclidean distance on the encoded config; ``k`` is chosen on the
    recorded tasks themselves, each predicted from the others.

    Args:
        finals: per task, per config key, (encoded config, final result).
        ks: the values of ``k`` tried.
    """

    def __init__(
        self,
        finals: Mapping[str, Mapping[str, tuple[Sequence[float], float]]],
        ks: Sequence[int] = (1, 2, 4, 8, 16, 32),
    ) -> None:
        from lit_transfer.surrogate.metrics import tau

        self.finals = finals
        tasks = list(finals)
        scores = {}
        for k in ks:
            taus = []
            for task in tasks if len(tasks) > 1 else []:
                reference = self._reference([t for t in tasks if t != task])
                vectors = [v for v, _ in finals[task].values()]
                taus.append(tau(self._predict(reference, vectors, k), [s for _, s in finals[task].values()]))
            scores[k] = sum(taus) / len(taus) if taus else 0.0
        self.k = max(ks, key=lambda k: (scores[k], -k))  # ties: fewer neighbours
        self.reference = self._reference(tasks)

    def _reference(self, tasks: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        pooled: dict[str, tuple[Sequence[float], list[float]]] = {}
        for task in tasks:
            for key, (vector, score) in self.finals[task].items():
                pooled.setdefault(key, (vector, []))[1].append(score)
        vectors = torch.tensor([v for v, _ in pooled.values()], dtype=torch.float64)
        means = torch.tensor([sum(s) / len(s) for _, s in pooled.values()], dtype=torch.float64)
        return vectors, means

    @staticmethod
    def _predict(reference: tuple[torch.Tensor, torch.Tensor], vectors: Sequence[Sequence[float]], k: int) -> list:
        points, means = reference
        distance = torch.cdist(torch.tensor(vectors, dtype=torch.float64), points)
        nearest = distance.topk(min(k, len(points)), largest=False).indices
        return means[nearest].mean(1).tolist()

    def predict(self, vectors: Sequence[Sequence[float]]) -> list[float]:
        return self._predict(self.reference, vectors, self.k)
