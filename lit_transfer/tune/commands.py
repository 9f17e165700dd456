"""What ``suggest`` and ``tune`` do for a user's new dataset, from the shipped (or a given) meta-dataset."""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from lit_transfer.executors import make_executor
from lit_transfer.finetune.run import fit_config
from lit_transfer.io import safe_name, write_atomic
from lit_transfer.metadataset.store import SHIPPED_METADATASET, MetaDataset
from lit_transfer.resources import resolve
from lit_transfer.space import DEFAULT_SPACE, PipelineConfig, SearchSpace, config_key
from lit_transfer.tune.loop import Budget, Step, run_tuning

if TYPE_CHECKING:
    from lit_transfer.tune.finetuning import FinetuneEvaluator
    from lit_transfer.tune.methods import MethodSpec


def meta_base_model(metadataset: str) -> str:
    """The base model most runs of a meta-dataset finetuned: the one its surrogates know."""
    with MetaDataset(metadataset) as store:
        counts = Counter(run.base_model for run in store.runs())
    if not counts:
        raise ValueError(f"{metadataset} has no runs")
    return resolve(counts.most_common(1)[0][0])  # recorded runs name a packaged model by its relative path


def candidate_configs(
    space: SearchSpace, metadataset: str, sampled: int = 1000, seed: int = 0, own: str | None = None
) -> list[dict]:
    """The meta-dataset's configs (and those of the user's own experience: where the surrogates know most) plus
    quasi-random ones, without repeats."""
    known = []
    for path in [metadataset] if own is None else [metadataset, own]:
        with MetaDataset(path) as store:
            known += [dict(run.config) for run in store.runs()]
    seen, out = set(), []
    for config in [*known, *(dict(c.values) for c in space.sample(sampled, seed=seed))]:
        key = config_key(config)
        if key not in seen:
            seen.add(key)
            out.append(config)
    return out


def experience_settings(metadataset: str, space: SearchSpace, base_model: str | None = None, seed: int = 0):
    """The run settings the meta-dataset's runs were trained with (its recorded ``RunSettings``), so that a
    suggested or tuned run is trained exactly as the experience it is predicted from."""
    from lit_transfer.finetune.settings import RunSettings

    with MetaDataset(metadataset) as store:
        recorded = store.run_settings() or {}
    base = base_model or meta_base_model(metadataset)
    return RunSettings.from_dict({**recorded, "max_epochs": space.max_epochs}, base_model=base, seed=seed)


def experience_surrogates(metadataset: str, own: str | None = None, surrogate: str | None = "performance") -> Any:
    """The pretrained ``surrogate`` (a method spec's; ``suggest``: Transfer's) and the cost one: meta-trained on the
    meta-dataset, or on it plus the user's own experience (``surrogate train --own``, written beside the user's
    file)."""
    from lit_transfer.surrogate import load_pretrained

    return load_pretrained(own if own is not None else metadataset, (surrogate or "performance", "cost"))


def task_features_of(data: str, settings, probe: bool | Callable[[], bool] = True) -> dict:
    """The task's meta-features, computed as the experience's were (``probe``: with the probe's; a callable is asked
    once the data has been read)."""
    from lit_transfer.metadataset.features import task_features

    return task_features(
        data, settings.base_model, settings.max_length, settings.eval_batch_size, settings.prompt_template, probe
    )


def reads_probe(surrogates: Any) -> bool:
    """Whether any of ``surrogates`` (a ``Surrogates``, or ``None``: none loaded) reads a probe feature: only then
    is the probe worth its training."""
    from lit_transfer.metadataset.features import PROBE_FEATURES

    loaded = [] if surrogates is None else [surrogates.perf, surrogates.cost, surrogates.refit]
    return any(set(PROBE_FEATURES) & set(s.encoding.task_features) for s in loaded if s is not None)


def features_and_surrogates(
    data: str, settings, load: Callable[[], Any], keep_probe: bool = False
) -> tuple[dict, Any]:  # fmt: skip
    """The task's meta-features and the surrogates ``load`` gives, loaded once the data has been read (a bad file is
    named before they are); the probe runs only when one of them reads it, or with ``keep_probe``."""
    loaded = []

    def probe() -> bool:
        loaded.append(load())
        return keep_probe or reads_probe(loaded[0])

    return task_features_of(data, settings, probe), loaded[0]


def suggest(
    data: str, top: int = 5, metadataset: str = SHIPPED_METADATASET, base_model: str | None = None,
    out: str = "runs/suggest", candidates: int = 1000, space: str = str(DEFAULT_SPACE), seed: int = 0,
    budget: float | None = None, own: str | None = None,
) -> list[dict[str, Any]]:  # fmt: skip
    """The ``top`` configs by predicted final metric (among those predicted to train all epochs within ``budget``
    seconds, if given), each written as a ready ``fit`` YAML, with the recorded runs most like it (``evidence``)."""
    from lit_transfer.tune.evidence import Experience

    if top < 1:
        raise ValueError(f"top must be at least 1, got {top}")
    search_space = SearchSpace.from_yaml(space)
    settings = experience_settings(metadataset, search_space, base_model, seed)
    features, surrogates = features_and_surrogates(data, settings, lambda: experience_surrogates(metadataset, own))
    perf, cost = surrogates.perf, surrogates.cost
    configs = candidate_configs(search_space, metadataset, candidates, seed, own)
    mean, std = perf.predict(configs, features)
    seconds = cost.predict_seconds(configs, features) * search_space.max_epochs
    affordable = [i for i in range(len(configs)) if budget is None or seconds[i] <= budget]
    order = sorted(affordable, key=lambda i: -mean[i])[:top]
    Path(out).mkdir(parents=True, exist_ok=True)
    experience = Experience([metadataset] if own is None else [metadataset, own], search_space)
    picks = []
    for rank, i in enumerate(order, start=1):
        path = Path(out) / f"suggestion_{rank}.yaml"
        fit = fit_config(PipelineConfig(configs[i]), data, settings, f"{out}/run_{rank}", tensorboard=True)
        write_atomic(path, yaml.safe_dump(fit, sort_keys=False))
        picks.append(
            {"rank": rank, "predicted": float(mean[i]), "std": float(std[i]), "seconds": float(seconds[i]),
             "config": configs[i], "yaml": str(path), "evidence": experience.behind(configs[i], features)}
        )  # fmt: skip
    return picks


def tune(
    data: str, budget: float, budget_unit: str = "seconds", method: MethodSpec | str = "transfer",
    metadataset: str = SHIPPED_METADATASET, base_model: str | None = None, out: str = "runs/tune",
    candidates: int = 1000, space: str = str(DEFAULT_SPACE), seed: int = 0,
    on_step: Callable[[Step], None] | None = None, on_start: Callable[[Any], None] | None = None,
    executor: str = "local", workers: int = 1,
    threads: int | None = None, address: str | None = None, num_cpus: float = 1.0, num_gpus: float = 0.0,
    storage: str | None = None, record_into: str | None = None, task_name: str | None = None,
    task_family: str | None = None, own: str | None = None, compare_default: bool = False,
) -> dict[str, Any]:  # fmt: skip
    """Tune with real finetuning trials until the budget is spent (resuming ``out/state.json`` if present); then
    test the chosen config. Returns (and writes to ``out/result.json``) the choice, its test metrics, its adapter.
    ``method`` is a spec (its options) or the name of one of this package's methods.

    ``workers`` trial steps run at once: in this process (one local worker), in worker processes (``local``) or on
    Ray actors (``ray``, reserving ``num_cpus`` and ``num_gpus`` each, on the cluster at ``address``). Trials live
    in ``storage`` (default: ``out``), which every worker must reach; the state stays in ``out``, written by this
    process only. With ``record_into``, every trial (curve so far, cost, status) is written after each step into
    that meta-dataset of the user's own, as task ``task_name`` (default: the data folder's name) of family
    ``task_family`` (default: a family of its own); ``own`` is such a
    file whose surrogates (``surrogate train --own``) and configs are used besides ``metadataset``'s. With
    ``compare_default``, the space's default config is then trained for at least as many epochs as the chosen one
    (outside the budget) and tested too: ``result["default"]``, so the choice is seen against the usual recipe."""
    from lit_transfer.finetune.data import check_splits
    from lit_transfer.finetune.models import check_model
    from lit_transfer.io import FolderLock
    from lit_transfer.tune.finetuning import FinetuneEvaluator
    from lit_transfer.tune.methods import MethodContext, method_spec
    from lit_transfer.tune.record import TrialRecorder, check_own, config_of, reconcile

    # everything the run will need is checked before the first trial, not after the budget is spent
    spec = method_spec(method)
    budget_ = Budget(budget, budget_unit)
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if record_into is not None:
        check_own(record_into)
    check_splits(data)
    search_space = SearchSpace.from_yaml(space)
    settings = experience_settings(metadataset, search_space, base_model, seed)
    check_model(settings.base_model)
    with FolderLock(out, "tune"):
        identity = tuning_identity(Path(out), data, settings)
        # a task recorded into the user's experience carries every feature, as the builder records them
        features, surrogates = features_and_surrogates(
            data, settings, lambda: experience_surrogates(metadataset, own, spec.surrogate) if spec.surrogate else None,
            keep_probe=record_into is not None,
        )  # fmt: skip
        context = MethodContext(
            search_space, candidate_configs(search_space, metadataset, candidates, seed, own), features,
            lambda: surrogates or experience_surrogates(metadataset, own, spec.surrogate), metadataset, seed=seed,
            state_file=Path(out) / "state.json",
        )  # fmt: skip
        tuner = spec.build(context)
        evaluator = FinetuneEvaluator(data, settings, storage or out, identity=identity)
        if threads is None:  # local worker processes share this machine's cores
            threads = max(1, (os.cpu_count() or 1) // workers) if executor == "local" else 1
        runner = make_executor(executor, workers, threads, address, num_cpus, num_gpus, processes=workers > 1)
        recorder = None
        if record_into is not None:
            name = safe_name(task_name or Path(data).resolve().name, "task name")
            recorder = TrialRecorder(record_into, name, features, settings, task_family)
            reconcile(recorder, context.state_file, lambda key: evaluator.storage.curve(evaluator.name(key)))

        def step_done(step: Step) -> None:
            if recorder is not None:  # this process is the only writer of the user's file
                curve = None if step.status == "failed" else evaluator.storage.curve(evaluator.name(step.config_key))
                recorder.record(step, config_of(tuner, step.config_key), curve)
            if on_step is not None:
                on_step(step)

        history = run_tuning(tuner, evaluator, budget_, context.state_file, step_done, on_start, runner)
        chosen, value = tuner.best()
        spent = history[-1].spent if history else 0
        result: dict[str, Any] = {"method": spec.name, "steps": len(history), "spent": spent}
        if chosen is None:
            result.update(config=None, message="no trial finished within the budget")
        else:
            epochs = tuner.epochs_done(chosen)
            test = evaluator.test(chosen)
            adapter = f"{evaluator.location(chosen)}/checkpoints/best"
            tested = evaluator.tested_epoch(chosen)
            result.update(config=chosen, epochs=epochs, val=value, test=test, tested_epoch=tested, adapter=adapter)
            reason = why_chosen(tuner, chosen, value, epochs, search_space, features)
            if reason:
                result["why"] = reason
            if compare_default:
                result["default"] = default_at(evaluator, dict(search_space.default().values), epochs, tuner)
        write_atomic(Path(out) / "result.json", json.dumps(result, indent=2, default=str))
    return result


def tuning_identity(out: Path, data: str, settings: Any) -> str | None:
    """The fingerprint of what this tuning trains on (``data_fingerprint``), recorded in ``out/task.json`` by its
    first run and checked by every resumed one: the same ``--out`` with other data or settings is refused, never
    continued with the old task's trials. A tuning begun before fingerprints were recorded (a ``state.json``
    without ``task.json``) keeps its trial folders as they were named (``None``)."""
    from lit_transfer.tune.finetuning import data_fingerprint

    fingerprint = data_fingerprint(data, settings)
    record = out / "task.json"
    if record.exists():
        try:
            known = json.loads(record.read_text())
        except (OSError, ValueError) as err:
            raise ValueError(f"{record}: cannot read what this tuning trains on ({err})") from None
        if known.get("fingerprint") != fingerprint:
            raise ValueError(
                f"{out}: this tuning trained on other data or settings ({known.get('data')}, fingerprint "
                f"{known.get('fingerprint')}; now {data}, {fingerprint}): give another --out"
            )
        return fingerprint
    if (out / "state.json").exists():
        return None
    where = str(Path(data).resolve()) if Path(data).exists() else str(data)
    write_atomic(record, json.dumps({"data": where, "fingerprint": fingerprint,
                                     "settings": settings.to_dict()}, indent=2))  # fmt: skip
    return fingerprint


def default_at(evaluator: FinetuneEvaluator, default: dict, epochs: int, tuner: Any) -> dict[str, Any]:
    """The default config trained to ``epochs`` (continuing its trial if tuning ran it; more if tuning already took
    it further) and tested: what the usual recipe gives for the same training."""
    from lit_transfer.tune.methods.base import Trial

    epochs = max(epochs, tuner.epochs_done(default))
    curve, _ = evaluator.run(Trial(default, epochs))
    val = max(point.get(evaluator.metric) or 0.0 for point in curve)
    status = evaluator.recorded(default)["status"]
    if status in ("diverged", "oom"):  # the run's own outcome: there is nothing to test
        return {"config": default, "epochs": epochs, "val": val, "status": status}
    return {"config": default, "epochs": epochs, "val": val, "status": status, "test": evaluator.test(default)}


def why_chosen(tuner: Any, chosen: dict, value: float, epochs: int, space: SearchSpace, features: dict) -> str | None:
    """One line on Transfer's choice: what its surrogate predicted of the chosen config before any trial (and of
    the default config), against what the trials observed. (QuickTune's and DyHPO's surrogates are refit on the
    trials: what they predict now is not what they predicted before.)"""
    if getattr(tuner, "name", None) != "transfer":
        return None
    perf = tuner.perf
    default = dict(space.default().values)
    mean, std = perf.predict([chosen, default], features)
    metric = tuner.metric
    line = (
        f"predicted {metric} {mean[0]:.3f} ± {1.96 * std[0]:.3f} (95%) before any trial, observed {value:.3f} in "
        f"{epochs} epochs"
    )
    _, default_curve = tuner.observed.get(config_key(default), (None, []))
    seen = f", observed {max(p.get(metric) or 0.0 for p in default_curve):.3f}" if default_curve else ", not run"
    return f"{line}; the default config was predicted {mean[1]:.3f} ± {1.96 * std[1]:.3f}{seen}"
