"""SearchSpace and PipelineConfig: the finetuning pipeline choices a tuner searches over.

Ranges live in YAML (``configs/space/*.yaml``) so users can change the space without code. A ``PipelineConfig``
is one point in it; it turns into the arguments of ``FinetuneModule`` / ``QADataModule`` / ``Trainer`` (which
``lit_transfer.finetune.run.fit_config`` makes into a ready ``fit`` config) and into a numeric vector for the
surrogates.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from lit_transfer.resources import CONFIGS

KINDS = ("categorical", "ordinal", "float")
DEFAULT_SPACE = CONFIGS / "space" / "default.yaml"
# where each hyperparameter goes in a fit config; the rest are FinetuneModule arguments
_DATA_ARGS = {"batch_size"}
_TRAINER_ARGS = {"gradient_clip": "gradient_clip_val"}


@dataclass(frozen=True)
class Hyperparameter:
    """One dimension: ``categorical`` (unordered choices), ``ordinal`` (ordered choices) or ``float`` (a range,
    optionally on a log scale)."""

    name: str
    kind: str
    default: Any
    choices: tuple = ()
    low: float = 0.0
    high: float = 1.0
    log: bool = False

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"hyperparameter {self.name!r}: kind must be one of {KINDS}, got {self.kind!r}")
        if self.kind == "float":
            if not self.low <= self.default <= self.high or (self.log and self.low <= 0):
                raise ValueError(f"hyperparameter {self.name!r}: need 0 < low <= default <= high (log) or low <= high")
        elif self.default not in self.choices:
            raise ValueError(f"hyperparameter {self.name!r}: default {self.default!r} is not among {self.choices}")

    def from_unit(self, u: float) -> Any:
        """Map u in [0, 1) to a value; the inverse of ``to_unit`` up to rounding."""
        if self.kind == "float":
            if self.log:
                return float(math.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low))))
            return float(self.low + u * (self.high - self.low))
        return self.choices[min(int(u * len(self.choices)), len(self.choices) - 1)]

    def check(self, value: Any) -> None:
        if self.kind == "float":
            if not isinstance(value, int | float) or not self.low <= value <= self.high:
                raise ValueError(f"{self.name}={value!r} is outside [{self.low}, {self.high}]")
        elif value not in self.choices:
            raise ValueError(f"{self.name}={value!r} is not one of {list(self.choices)}")

    def encode(self, value: Any) -> list[float]:
        """Floats and ordinals -> one number in [0, 1]; categoricals -> one-hot."""
        if self.kind == "float":
            if self.log:
                return [(math.log(value) - math.log(self.low)) / (math.log(self.high) - math.log(self.low))]
            return [(value - self.low) / (self.high - self.low) if self.high > self.low else 0.0]
        index = self.choices.index(value)
        if self.kind == "ordinal":
            return [index / max(1, len(self.choices) - 1)]
        return [float(i == index) for i in range(len(self.choices))]

    def feature_names(self) -> list[str]:
        if self.kind == "categorical":
            return [f"{self.name}={c}" for c in self.choices]
        return [self.name]


def config_key(values: Mapping[str, Any]) -> str:
    """A pipeline's stable identity from its values (any mapping, a ``PipelineConfig`` too): the same pipeline always
    gets the same key. States, stores and trial folders are keyed by it."""
    return ";".join(f"{k}={values[k]!r}" for k in sorted(values))


@dataclass(frozen=True)
class PipelineConfig(Mapping):
    """One finetuning pipeline: a value for every hyperparameter of its space (read-only mapping)."""

    values: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Any:
        return self.values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.values)

    def __len__(self) -> int:
        return len(self.values)

    def __hash__(self) -> int:
        return hash(self.key())

    def key(self) -> str:
        """A stable identity: the same pipeline always gets the same key (``config_key``)."""
        return config_key(self.values)

    def brief(self) -> str:
        """The pipeline in a few words, for tables: adapter, rank, optimizer, learning rate, batch size."""
        v = self.values
        return f"{v['adapter']} r={v['lora_rank']} {v['optimizer']} lr={v['learning_rate']:.2g} bs={v['batch_size']}"

    def module_args(self) -> dict[str, Any]:
        """``FinetuneModule`` arguments (alpha is stored as a ratio of the rank so it scales with it)."""
        args = {k: v for k, v in self.values.items() if k not in _DATA_ARGS and k not in _TRAINER_ARGS}
        ratio = args.pop("lora_alpha_ratio", None)
        if ratio is not None:
            args["lora_alpha"] = float(ratio) * args["lora_rank"]
        return args

    def data_args(self) -> dict[str, Any]:
        return {k: v for k, v in self.values.items() if k in _DATA_ARGS}

    def trainer_args(self) -> dict[str, Any]:
        args = {target: self.values[name] for name, target in _TRAINER_ARGS.items() if name in self.values}
        if args.get("gradient_clip_val") == 0:
            args["gradient_clip_val"] = None  # 0 means no clipping
        return args


class SearchSpace:
    """The hyperparameters and the fidelity range (epochs 1..``max_epochs``)."""

    def __init__(self, hyperparameters: list[Hyperparameter], max_epochs: int = 8) -> None:
        if not hyperparameters:
            raise ValueError("a search space needs at least one hyperparameter")
        self.hyperparameters = {h.name: h for h in hyperparameters}
        self.max_epochs = max_epochs

    @classmethod
    def from_yaml(cls, path: str | Path = DEFAULT_SPACE) -> SearchSpace:
        """A space from its YAML file (``configs/space/...`` finds the packaged one from any folder)."""
        from lit_transfer.resources import resolve

        return cls.from_dict(yaml.safe_load(Path(resolve(path)).read_text()), source=str(path))

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any], source: str = "search space") -> SearchSpace:
        """The inverse of ``to_dict``; the YAML layout (``max_epochs``, ``hyperparameters``)."""
        try:
            params = [
                Hyperparameter(name=name, **{k: tuple(v) if k == "choices" else v for k, v in body.items()})
                for name, body in spec["hyperparameters"].items()
            ]
        except (KeyError, TypeError) as err:
            raise ValueError(f"{source}: malformed search space ({err})") from None
        return cls(params, max_epochs=spec.get("max_epochs", 8))

    @classmethod
    def resolve(cls, space: str | Path | Mapping[str, Any] | SearchSpace) -> SearchSpace:
        """A space from a YAML path, a ``to_dict`` mapping (as stored in checkpoints) or a space."""
        if isinstance(space, SearchSpace):
            return space
        return cls.from_dict(space) if isinstance(space, Mapping) else cls.from_yaml(space)

    def to_dict(self) -> dict[str, Any]:
        """The YAML layout as plain data, so a model can carry its space inside its checkpoint."""
        params = {}
        for h in self.hyperparameters.values():
            body: dict[str, Any] = {"kind": h.kind, "default": h.default}
            if h.kind == "float":
                body.update(low=h.low, high=h.high, log=h.log)
            else:
                body["choices"] = list(h.choices)
            params[h.name] = body
        return {"max_epochs": self.max_epochs, "hyperparameters": params}

    def __len__(self) -> int:
        return len(self.hyperparameters)

    def default(self) -> PipelineConfig:
        return PipelineConfig({name: h.default for name, h in self.hyperparameters.items()})

    def config(self, values: Mapping[str, Any]) -> PipelineConfig:
        """Validate ``values`` (every hyperparameter, nothing unknown) and wrap them."""
        unknown = set(values) - set(self.hyperparameters)
        if unknown:
            raise ValueError(f"unknown hyperparameter(s): {', '.join(sorted(unknown))}")
        missing = set(self.hyperparameters) - set(values)
        if missing:
            raise ValueError(f"missing hyperparameter(s): {', '.join(sorted(missing))}")
        for name, value in values.items():
            self.hyperparameters[name].check(value)
        return PipelineConfig(dict(values))

    def sample(self, n: int, seed: int = 0) -> list[PipelineConfig]:
        """``n`` configs from a scrambled Sobol sequence: quasi-random, spread evenly, the same for a seed."""
        from scipy.stats import qmc

        # whole powers of two keep Sobol's balance (scipy warns otherwise); the first n of them are what random(n) gives
        points = qmc.Sobol(d=len(self), scramble=True, seed=seed).random_base2(max(n - 1, 0).bit_length())[:n]
        names = list(self.hyperparameters)
        return [
            PipelineConfig(
                {name: self.hyperparameters[name].from_unit(float(u)) for name, u in zip(names, row, strict=False)}
            )
            for row in points
        ]

    def encode(self, config: Mapping[str, Any]) -> np.ndarray:
        self.config(config)
        return np.array([x for name, h in self.hyperparameters.items() for x in h.encode(config[name])], np.float32)

    def feature_names(self) -> list[str]:
        return [f for h in self.hyperparameters.values() for f in h.feature_names()]
