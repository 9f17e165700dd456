"""Command line: one jsonargparse tree of commands; LightningCLI runs the Trainer commands (fit/validate/test).

Model and data are given by ``class_path`` in the YAML, so the same ``fit`` trains a finetuning run or a
surrogate. Commands that are not Trainer runs are plain functions, registered once in ``COMMANDS``; their
docstrings are their ``--help``. Nothing rewrites the command line: every parser takes ``--config`` from any folder
(``PackagedConfig``), ``--debug``, and boolean options as flags.
"""

from __future__ import annotations

import json as json_module
import sys
from argparse import ArgumentError
from typing import Literal

from jsonargparse import ActionYesNo, ArgumentParser

from lit_transfer import trainer_help
from lit_transfer.evaluation.plan import EvaluationPlan
from lit_transfer.metadataset.build import BuildPlan
from lit_transfer.resources import SHIPPED_METADATASET, PackagedConfig, resolve
from lit_transfer.space import DEFAULT_SPACE, PipelineConfig, SearchSpace
from lit_transfer.surrogate.recipes import DEFAULT_RECIPES
from lit_transfer.tune.methods.spec import MethodSpec

TRAINER_COMMANDS = ("fit", "validate", "test")


def metadata_build(plan: BuildPlan, progress: bool = True) -> None:
    """Build or extend a meta-dataset of finetuning runs (resumable: rerun the same command to continue).

    Args:
        plan: what to build (``--config configs/metadata/micro.yaml``).
        progress: show a progress bar with ETA.
    """
    from lit_transfer.metadataset.build import build

    store = build(plan, progress=progress)
    print(f"{plan.out}: {len(store)} runs")


def metadata_tasks(
    out: str, suite: Literal["v1", "v2"] = "v1", tasks: list[str] | None = None, seed: int | None = None,
    world_seed: int = 0,
) -> None:  # fmt: skip
    """Write a synthetic QA task suite (one folder of train/validation/test JSONL per task).

    Args:
        out: folder to write into.
        suite: ``v1`` (8 tasks, the first meta-dataset) or ``v2`` (32 tasks of 14 families).
        tasks: task names (default: all of the suite), e.g. ``--tasks [yes_no,counting]``.
        seed: seed that draws the examples (default: each task's own, as in the meta-dataset); any other seed gives
            new tasks of the same families, levels and sizes, which no recorded run has seen.
        world_seed: seed of the generated world the tasks ask about (the shipped base models know world 0).
    """
    from lit_transfer.metadataset.tasks import select_tasks, suite_world, write_tasks

    for path in write_tasks(out, select_tasks(tasks, seed, suite), world=suite_world(suite, world_seed)):
        print(path)


def metadata_summary(
    metadataset: str = SHIPPED_METADATASET, json: bool = False, space: str = str(DEFAULT_SPACE)
) -> None:
    """Per task: runs, failures, best / median / default-config final val/acc; and how much tasks agree.

    Args:
        metadataset: the meta-dataset (default: the shipped one).
        json: print one JSON object instead of a table.
        space: the search space whose default config is reported as "default".
    """
    from lit_transfer.metadataset.store import MetaDataset
    from lit_transfer.metadataset.summary import checks, format_table, summarize

    with MetaDataset(resolve(metadataset)) as store:
        summary = summarize(store, SearchSpace.from_yaml(space).default().key())
    summary["checks"] = checks(summary)
    if json:
        print(json_module.dumps(summary))
        return
    print(format_table(summary))
    print("checks: " + ", ".join(f"{name} {'✓' if ok else '✗'}" for name, ok in summary["checks"].items()))


def metadata_copy(out: str, metadataset: str = SHIPPED_METADATASET, without_families: list[str] | None = None) -> None:
    """Copy a meta-dataset without whole families of tasks: experience that never met that kind of task.

    Then ``surrogate train --metadataset OUT`` meta-trains surrogates on it, and ``suggest``/``tune
    --metadataset OUT`` treat a task of a left-out family as new, as ``evaluate --holdout family`` does.

    Args:
        out: the new meta-dataset file (if it exists, it is kept when it is this very copy, else refused).
        metadataset: the meta-dataset to copy (default: the shipped one).
        without_families: families whose tasks and runs are left out, e.g. ``--without_families [entity_type]``.
    """
    from pathlib import Path

    from lit_transfer.metadataset.store import MetaDataset

    with MetaDataset(resolve(metadataset)) as store:
        families = store.families()
        leaving = set(without_families or ())
        unknown = sorted(leaving - set(families.values()))
        if unknown:
            raise ValueError(
                f"{store.path}: no family {', '.join(unknown)}; it has {', '.join(sorted(set(families.values())))}"
            )
        left = [task for task, family in families.items() if family in leaving]
        if Path(out).exists():  # a rerun keeps the copy it made; anything else there is not overwritten
            with MetaDataset(out) as there:
                if set(there.tasks()) != set(families) - set(left):
                    raise ValueError(f"{out}: already exists and holds other tasks; remove it or choose another --out")
            print(f"{out}: kept (the same copy)")
            return
        store.copy_without(left, out)
    with MetaDataset(out) as copy:
        print(f"{out}: {len(copy.tasks())} tasks, {len(copy)} runs ({len(left)} tasks left out)")


def suggest(
    data: str, top: int = 5, budget: str | None = None, metadataset: str = SHIPPED_METADATASET,
    base_model: str | None = None, out: str = "runs/suggest", candidates: int = 1000, seed: int = 0,
    own: str | None = None,
) -> None:  # fmt: skip
    """Suggest finetuning pipelines for a new dataset from the meta-learned surrogates (no training).

    Prints the top configs with predicted final val/acc and training time, and writes each as a ready ``fit`` YAML.

    Args:
        data: the new task's data folder (train/validation/test.jsonl).
        top: how many configs.
        budget: only configs predicted to finish all epochs within this time (600, 30m, 5h); default: any.
        metadataset: meta-dataset whose pretrained surrogates are used (default: the shipped one).
        base_model: model to finetune (default: the meta-dataset's).
        out: folder for the YAML files.
        candidates: configs sampled from the space, besides the meta-dataset's own.
        seed: seed of the sample.
        own: your own meta-dataset (tune --record_into), with surrogates from ``surrogate train --own``.
    """
    from lit_transfer.tune.commands import suggest as run_suggest
    from lit_transfer.tune.loop import parse_duration

    seconds = None if budget is None else parse_duration(budget)
    picks = run_suggest(
        data, top, resolve(metadataset), base_model, out, candidates, seed=seed, budget=seconds, own=own
    )
    if not picks:
        fail(f"no config is predicted to finish within {budget}", 1)
    print(f"{'rank':>4}  {'val/acc ± 95%':>14}  {'minutes':>7}  config -> fit YAML")
    for p in picks:
        short = PipelineConfig(p["config"]).brief()
        predicted = f"{p['predicted']:>6.3f} ± {1.96 * p['std']:.3f}"  # ± is always the 95% interval's half-width
        print(f"{p['rank']:>4}  {predicted}  {p['seconds'] / 60:>7.1f}  {short} -> {p['yaml']}")
        nearest = ", ".join(f"{e['task']} {e['final']:.3f}" for e in p["evidence"])
        print(f"{'':>4}  recorded nearby: {nearest}")


def surrogate_train(
    metadataset: str = SHIPPED_METADATASET, only: Literal["performance", "cost", "refit"] | None = None,
    perf_config: str = DEFAULT_RECIPES["performance"], cost_config: str = DEFAULT_RECIPES["cost"],
    refit_config: str = DEFAULT_RECIPES["refit"], threads: int = 1, own: str | None = None,
) -> None:  # fmt: skip
    """Meta-train the surrogates on a meta-dataset and write them beside it.

    Trained on all its tasks and written where suggest, tune and evaluate load them (``<name>.perf.ckpt``,
    ``<name>.cost.ckpt``, ``<name>.refit.ckpt``). Seeded: the same input gives the same weights.
    With ``own``, they learn from the meta-dataset plus your own experience, and are written beside your file
    (where ``suggest --own`` and ``tune --own`` load them).

    Args:
        metadataset: the meta-dataset (default: the shipped one).
        own: your own meta-dataset (what ``tune --record_into`` wrote), learned from besides ``metadataset``.
        only: train one of them (default: all three).
        perf_config: YAML of the performance surrogate of Transfer and suggest (the same file ``fit`` takes).
        cost_config: YAML of the cost surrogate.
        refit_config: YAML of the performance surrogate QuickTune and DyHPO refit on a task.
        threads: torch CPU threads (small models: 1 is fastest).
    """
    import time

    import torch

    from lit_transfer.metadataset.store import MetaDataset
    from lit_transfer.surrogate.pretrained import pretrained_paths, save_weights
    from lit_transfer.surrogate.training import train_surrogate
    from lit_transfer.tune.record import check_own

    torch.set_num_threads(threads)
    metadataset = resolve(metadataset)
    sources = [metadataset] if own is None else [metadataset, str(check_own(own))]
    for source in sources:
        MetaDataset(source).close()  # a clear error for a bad file before any training
    paths = pretrained_paths(sources[-1])
    recipes = {"performance": perf_config, "cost": cost_config, "refit": refit_config}
    for target, recipe in recipes.items():
        out = paths[target]
        if only not in (None, target):
            continue
        start = time.perf_counter()
        module = train_surrogate(recipe, metadataset, own=sources[1:])
        size = save_weights(module, out).stat().st_size
        print(f"{out}: {target} surrogate meta-trained in {time.perf_counter() - start:.0f} s ({size:,} bytes)")


def surrogate_evaluate(
    metadataset: str = SHIPPED_METADATASET, tasks: list[str] | None = None,
    perf_config: str = DEFAULT_RECIPES["performance"], cost_config: str = DEFAULT_RECIPES["cost"],
    holdout: Literal["task", "family"] = "task", json: bool = False, threads: int = 1,
) -> None:  # fmt: skip
    """The surrogates' quality on tasks they never saw, one task or one whole family left out at a time.

    Each task (or each family, all its tasks together) in turn is new and the surrogates meta-train on the rest (the
    same seeded path as ``surrogate train``); rankings before and after observed epochs against baselines,
    calibration of the 95% interval, cost error.

    Args:
        metadataset: the meta-dataset (default: the shipped one).
        tasks: tasks to evaluate (default: every task); each is held out with its family under ``holdout family``.
        holdout: ``task`` (leave one task out) or ``family`` (leave one family out: a new kind of dataset).
        perf_config: YAML of the performance surrogate.
        cost_config: YAML of the cost surrogate.
        json: print one JSON object (means and per task) instead of the table.
        threads: torch CPU threads.
    """
    import torch

    from lit_transfer.evaluation.surrogate_quality import format_table as quality_table
    from lit_transfer.evaluation.surrogate_quality import leave_out

    torch.set_num_threads(threads)
    summary = leave_out(
        resolve(metadataset), perf_config, cost_config, tasks, holdout, progress=(lambda m: None) if json else print
    )
    print(json_module.dumps(summary) if json else quality_table(summary))


def tune(
    data: str, budget: str | float, budget_unit: Literal["seconds", "epochs"] = "seconds",
    method: MethodSpec | str = "transfer", metadataset: str = SHIPPED_METADATASET, base_model: str | None = None,
    out: str = "runs/tune", candidates: int = 1000, seed: int = 0, executor: Literal["local", "ray"] = "local",
    workers: int = 1, threads: int | None = None,
    address: str | None = None, num_cpus: float = 1.0, num_gpus: float = 0.0, storage: str | None = None,
    record_into: str | None = None, task_name: str | None = None, task_family: str | None = None,
    own: str | None = None, compare_default: bool = False,
) -> None:  # fmt: skip
    """Tune the finetuning pipeline for a new dataset with real trials, then test the chosen one.

    Resumable: rerun the same command after an interruption (the state is in OUT/state.json).

    Args:
        data: the new task's data folder (train/validation/test.jsonl).
        budget: how much tuning may cost: a duration (600, 30m, 5h) or, with ``budget_unit epochs``, epochs.
        budget_unit: ``seconds`` (of training) or ``epochs`` (trial steps).
        method: the tuning method: a name (transfer, quicktune, dyhpo, portfolio, default, zero_shot, random,
            optuna_tpe, dehb: with its defaults) or a spec with its options (``--method TransferSpec
            --method.drop_below 0.3``; in YAML ``class_path`` and ``init_args``).
        metadataset: meta-dataset whose pretrained surrogates and configs are used.
        base_model: model to finetune (default: the meta-dataset's).
        out: folder for trials, state, TensorBoard logs and result.json.
        candidates: configs sampled from the space, besides the meta-dataset's own.
        seed: seed of the method and of training.
        executor: local (this process, or worker processes when workers > 1) | ray (Ray actors).
        workers: trial steps in flight at once (asynchronous: a freed worker gets the next ask at once).
        threads: torch threads per worker (default: this machine's cores shared among local workers; 1 on Ray).
        address: the Ray cluster (auto, ray://host:10001; default: a local Ray instance).
        num_cpus: CPUs each trial reserves on Ray.
        num_gpus: GPUs each trial reserves on Ray (fractions: several small trials share a GPU).
        storage: where trials live, reachable by every worker: a shared folder or an fsspec URL (default: out).
        record_into: your own meta-dataset file: every trial (curve so far, cost, status) is recorded into it.
        task_name: the task's name there (default: the data folder's name).
        task_family: the kind of task it is there (default: a family of its own): ``evaluate --holdout family``
            and the surrogates hold a family's tasks out together.
        own: your own meta-dataset, with surrogates from ``surrogate train --own``, used besides ``metadataset``.
        compare_default: then train the default config as long as the chosen one (outside the budget) and test it.
    """
    from lit_transfer.tune.commands import tune as run_tune
    from lit_transfer.tune.finetuning import trial_id
    from lit_transfer.tune.loop import parse_duration

    writers = []  # TensorBoard, opened with the first step (once tune holds its folder)

    def on_start(trial) -> None:
        print(f"trial {trial_id(trial.key)} epoch {trial.fidelity}: training ...", flush=True)

    def on_step(step) -> None:
        if not writers:
            from torch.utils.tensorboard import SummaryWriter

            writers.append(SummaryWriter(f"{out}/tensorboard"))
        writers[0].add_scalar("tune/incumbent", step.incumbent, global_step=round(step.spent))
        writers[0].add_scalar("tune/value", step.value, global_step=round(step.spent))
        writers[0].flush()
        where = f"spent {step.spent:8.1f} {budget_unit} | trial {trial_id(step.config_key)} epoch {step.fidelity}"
        if step.status == "failed":  # a step that did not run scores nothing: say so, and why
            print(f"{where} | failed: {step.message} (best {step.incumbent:.3f})", flush=True)
            return
        print(f"{where} | val/acc {step.value:.3f} (best {step.incumbent:.3f}) | step {step.seconds:.1f} s", flush=True)

    amount = parse_duration(budget) if budget_unit == "seconds" else float(budget)
    try:
        result = run_tune(
            data, amount, budget_unit, method, resolve(metadataset), base_model, out, candidates,
            seed=seed, on_step=on_step, on_start=on_start, executor=executor, workers=workers,
            threads=threads, address=address, num_cpus=num_cpus, num_gpus=num_gpus, storage=storage,
            record_into=record_into, task_name=task_name, task_family=task_family, own=own,
            compare_default=compare_default,
        )  # fmt: skip
    finally:
        for writer in writers:
            writer.close()
    print(json_module.dumps(result, indent=2, default=str))
    if result.get("why"):
        print(f"why this config: {result['why']}")
    if result.get("default"):
        default = result["default"]
        outcome = f"{default['test']['test/acc']:.3f}" if "test" in default else default["status"]
        print(f"test/acc {result['test']['test/acc']:.3f} with the chosen config in {result['epochs']} epochs; the "
              f"default config in {default['epochs']} epochs: {outcome}")  # fmt: skip


def evaluate(plan: EvaluationPlan) -> None:
    """Compare the tuning methods on a meta-dataset, leaving out one task or one whole family at a time.

    Replays the recorded runs; resumable.

    Args:
        plan: what to compare (``--config configs/evaluate/loto.yaml``).
    """
    from pathlib import Path

    from lit_transfer.evaluation.tuning import evaluate as run_evaluate

    run_evaluate(plan)
    print((Path(plan.out) / "table.md").read_text().rstrip())  # the methods, then the references
    print(f"results, plots and summary.json in {plan.out}")


COMMANDS = {
    "metadata": {
        "build": metadata_build,
        "tasks": metadata_tasks,
        "summary": metadata_summary,
        "copy": metadata_copy,
    },
    "surrogate": {"train": surrogate_train, "evaluate": surrogate_evaluate},
    "suggest": suggest,
    "tune": tune,
    "evaluate": evaluate,
}


TRAINER_HELP = "a Lightning Trainer run from a YAML config (model and data by class_path; --help for its options)"
POSITIONAL = {metadata_summary: "metadataset"}  # ``metadata summary PATH`` as well as ``--metadataset PATH``
ABOUT = "Choose how to finetune a causal LM for a new QA dataset from the experience of related ones, then finetune it."
DEBUG_HELP = "show the traceback of an error instead of one line"


def _flag() -> ActionYesNo:
    """A boolean option as a flag: ``--x``, ``--no_x``, or ``--x true`` (with ``nargs="?"``)."""
    return ActionYesNo(yes_prefix="", no_prefix="no_")


def _command_parser(command) -> ArgumentParser:
    """The parser of one command function: its signature and docstring; booleans as flags (``--json``,
    ``--no_progress``), ``--config``, ``--debug``."""
    import inspect

    from docstring_parser import parse

    parsed = parse(command.__doc__ or "")
    described = {p.arg_name: p.description for p in parsed.params}
    parameters = inspect.signature(command).parameters
    flags = [n for n, p in parameters.items() if p.annotation in (bool, "bool")]
    text = "\n\n".join(t for t in (parsed.short_description, parsed.long_description) if t)
    parser = ArgumentParser(description=text)
    parser.add_argument("--config", action=PackagedConfig, help="a YAML file of these options")
    if command in POSITIONAL:
        name = POSITIONAL[command]
        parser.add_argument("given", nargs="?", default=None, metavar=name.upper(), help=f"same as --{name}")
    parser.add_function_arguments(command, as_positional=False, sub_configs=True, skip=set(flags))
    for name in flags:
        parser.add_argument(
            f"--{name}", action=_flag(), nargs="?", default=parameters[name].default, help=described.get(name, "")
        )
    parser.add_argument("--debug", action=_flag(), nargs="?", default=False, help=DEBUG_HELP)
    return parser


def command_tree() -> ArgumentParser:
    """Every command, once: the Trainer commands (parsed by LightningCLI, listed here), then ``COMMANDS``."""
    root = ArgumentParser(prog=_prog(), description=ABOUT, exit_on_error=False)
    root.add_argument("--debug", action=_flag(), default=False, help=DEBUG_HELP)  # a flag: a command follows
    commands = root.add_subcommands(required=True, dest="subcommand")
    for name in TRAINER_COMMANDS:
        commands.add_subcommand(name, ArgumentParser(description=TRAINER_HELP), help=TRAINER_HELP)

    def add(container, name: str, command) -> None:
        if isinstance(command, dict):
            group = ArgumentParser(description=f"{name} commands")
            group.add_argument("--debug", action=_flag(), default=False, help=DEBUG_HELP)
            container.add_subcommand(name, group, help=", ".join(command))
            inner = group.add_subcommands(required=True, dest="subcommand")
            for inner_name, inner_command in command.items():
                add(inner, inner_name, inner_command)
            return
        parser = _command_parser(command)
        container.add_subcommand(name, parser, help=(command.__doc__ or "").split("\n")[0])

    for name, command in COMMANDS.items():
        add(commands, name, command)
    return root


def run_command(tree: ArgumentParser, argv: list[str]) -> None:
    """Parse ``argv`` with ``tree`` and call the command it names with its options."""
    config = tree.instantiate_classes(tree.parse_args(argv))
    command, options = COMMANDS, config
    while isinstance(command, dict):
        name = options["subcommand"]
        command, options = command[name], options[name]
    kwargs = {k: v for k, v in vars(options).items() if k not in ("config", "debug", "given", "__path__")}
    if options.get("given") is not None:
        name = POSITIONAL[command]
        if kwargs[name] != _default(command, name):
            raise ValueError(f"give the {name} once: {options['given']} or --{name} {kwargs[name]}")
        kwargs[name] = options["given"]
    command(**kwargs)


def _default(command, name: str):
    import inspect

    return inspect.signature(command).parameters[name].default


def _usage_errors() -> tuple[type[BaseException], ...]:
    """Bad input from the user (data, config, paths, stores, checkpoints): one line, exit code 2."""
    import argparse

    import yaml
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    from lit_transfer.io import LockedError

    return (
        ValueError, FileNotFoundError, NotADirectoryError, IsADirectoryError, LockedError, yaml.YAMLError,
        argparse.ArgumentError, MisconfigurationException,
    )  # fmt: skip


def _run_errors() -> tuple[type[BaseException], ...]:
    """A run or trial step that failed for a reason that is not its outcome: one line, exit code 1."""
    from lit_transfer.finetune.run import RunError
    from lit_transfer.metadataset.build import BuildError

    return (RunError, BuildError, OSError)


def fail(message: str, code: int) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(code)


def _condensed(message: str, argv: list[str]) -> str:
    """One line from jsonargparse's report of a config that does not validate: the config file and the reasons our
    classes gave, each with the lines indented under it (``Option 'lora_rnak' is not accepted``), not the
    alternatives it also tried."""
    reasons: list[list[str]] = []
    indent = None
    for raw in message.splitlines():
        line = raw.strip()
        if not line:
            continue
        depth = len(raw) - len(raw.lstrip())
        if line.startswith("- "):
            reasons.append([line[2:]])
            indent = depth
        elif reasons and indent is not None and depth > indent:
            reasons[-1].append(line)
        else:
            indent = None
    kept = [" ".join(parts) for parts in reasons if "Expected a <class 'NoneType'>" not in parts[0]]
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    config = next((argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--config"), None)
    head = " ".join(lines[:2]) if len(lines) > 1 and lines[0].endswith(":") else lines[0] if lines else message
    text = "; ".join(kept) if kept else head  # 'Parser key "suite": Expected a ... Got value: v9
    return f"{config}: {text}" if config and config not in text else text


def run_trainer_command(argv: list[str] | None) -> None:
    """LightningCLI; a run that diverged or ran out of memory exits 1 with its status (after its curve is saved).
    A config that does not validate raises jsonargparse's error, which ``main`` reports in one line."""
    from lit_transfer.finetune.curves import LearningCurve
    from lit_transfer.trainer import trainer_cli

    cli = trainer_cli(argv, prog=_prog())
    for callback in getattr(cli.trainer, "callbacks", []):
        if isinstance(callback, LearningCurve) and callback.status in ("diverged", "oom"):
            where = callback.path or "curve.json"
            fail(f"the run ended {callback.status}: {callback.message} (its curve is in {where})", 1)


def _prog() -> str:
    """How the user called us, for usage lines: the ``lit-transfer`` command or ``python -m lit_transfer``."""
    from pathlib import Path

    return "lit-transfer" if Path(sys.argv[0]).name == "lit-transfer" else "python -m lit_transfer"


def main(argv: list[str] | None = None) -> None:
    from lit_transfer.quiet import silence

    from_command_line = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv  # every parser takes it; read here so that an error in parsing honours it too
    silence()
    try:
        if argv and argv[0] in TRAINER_COMMANDS:
            given = None if from_command_line else argv  # LightningCLI reads sys.argv itself
            if trainer_help.kept(argv):  # Lightning's options, listed without importing Lightning once kept
                trainer_help.show(argv, _prog(), lambda: run_trainer_command(given))
                return
            run_trainer_command(given)
            return
        tree = command_tree()
        if not argv:
            tree.print_help()
            return
        trains = argv[:2] not in (["metadata", "tasks"], ["metadata", "summary"], ["metadata", "copy"])
        if trains and not {"-h", "--help"} & set(argv):  # Lightning, once imported, is quieted again
            import lightning.pytorch  # noqa: F401  (its import sets its loggers to INFO)

            silence()
        run_command(tree, argv)
    except Exception as err:  # classified here, not in the except clause: --help's SystemExit imports nothing
        if debug:
            raise
        if isinstance(err, ArgumentError) and "invalid choice" in str(err) and argv[0] not in COMMANDS:
            fail(f"unknown command {argv[0]!r}; commands: {', '.join([*TRAINER_COMMANDS, *COMMANDS])}", 2)
        if isinstance(err, _usage_errors()):
            parsing = isinstance(err, ArgumentError) or "\n" in str(err)  # jsonargparse's reports
            fail(_condensed(str(err), argv) if parsing else str(err), 2)
        if isinstance(err, _run_errors()):
            fail(str(err), 1)
        raise
