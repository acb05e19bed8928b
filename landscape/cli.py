"""The `landscape` command line: thin wrappers that parse options, call the library, print."""

from __future__ import annotations

import math
import re
import sys
from pathlib import Path

import click

from . import __version__
from .errors import LandscapeError
from .recipe import (FIGURE_EPOCHS_TEXT, MILESTONES_TEXT, PAPER_EPOCHS, PAPER_LR, PAPER_MOMENTUM, PRESET_HELP,
                     SAVE_AT_TEXT)
from .settings import DEFAULT_MEASUREMENTS, MAX_BATCH_SIZE, MAX_EPOCHS, MAX_PARAMETERS, AnalysisSettings

_A = AnalysisSettings  # the analysis defaults, read from their one definition


def _os_error_line(exc: OSError) -> str:
    """'cannot access PATH: Permission denied' (the file an OSError is about, and why)."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    files = [f for f in (exc.filename, getattr(exc, "filename2", None)) if f is not None]
    return f"cannot access {' -> '.join(map(str, files))}: {reason}" if files else reason


class _Group(click.Group):
    """Turns library errors into one line and a non-zero exit, never a traceback.

    Besides LandscapeError: an OSError (read-only folder, full disk, ...) names its file, and an
    unpickling error (a damaged or unsafe torch file read without a file-aware loader) says so.
    """

    def invoke(self, ctx):
        """Run the command; library errors, OSErrors and Ctrl-C become one line and an exit code."""
        import pickle

        try:
            return super().invoke(ctx)
        except LandscapeError as exc:
            raise click.ClickException(str(exc)) from None
        except OSError as exc:
            raise click.ClickException(_os_error_line(exc)) from None
        except (pickle.UnpicklingError, EOFError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise click.ClickException(f"a damaged or unsafe file could not be read ({first})") from None
        except KeyboardInterrupt:
            click.echo("\ninterrupted; finished work is saved, run the same command again to resume",
                       err=True)
            sys.exit(130)


def _int_list(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, got {text!r}") from None


def _float_list(text: str | None) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated numbers, got {text!r}") from None


class _Number(click.ParamType):
    """A finite float within bounds: ``low`` (inclusive, or exclusive if ``strict``) and ``below``."""

    name = "number"

    def __init__(self, low: float | None = None, strict: bool = False, below: float | None = None):
        self.low, self.strict, self.below = low, strict, below

    def convert(self, value, param, ctx):
        """The number, or a one-line usage error naming the option and the allowed range."""
        if isinstance(value, float):
            number = value
        else:
            try:
                number = float(value)
            except (TypeError, ValueError):
                self.fail(f"{value!r} is not a number", param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value} is not a finite number", param, ctx)
        if self.low is not None and (number <= self.low if self.strict else number < self.low):
            self.fail(f"{value} must be {'>' if self.strict else '≥'} {self.low:g}", param, ctx)
        if self.below is not None and number >= self.below:
            self.fail(f"{value} must be < {self.below:g}", param, ctx)
        return number


class _Epochs(click.ParamType):
    """Comma-separated checkpoint epochs ≥ 0, as a list of ints."""

    name = "EPOCHS"

    def convert(self, value, param, ctx):
        """The epochs, or a usage error naming the option."""
        if isinstance(value, list):
            return value
        try:
            epochs = [int(v) for v in str(value).split(",") if v.strip()]
        except ValueError:
            self.fail(f"expected comma-separated epochs, got {value!r}", param, ctx)
        if any(e < 0 for e in epochs):
            self.fail(f"epochs must be ≥ 0, got {value!r}", param, ctx)
        return epochs


EPOCHS = _Epochs()
POSITIVE = _Number(0.0, strict=True)
NON_NEGATIVE = _Number(0.0)
COUNT = click.IntRange(min=1)
COUNT0 = click.IntRange(min=0)
SEED = click.IntRange(0, 2**31 - 1)


def _widths(text: str | None) -> list[float] | None:
    """--widths: positive finite multipliers, whole ones as integers (so cell folders read w1, w0.5)."""
    values = _checked_list(text, _float_list, "--widths needs positive numbers", lambda w: math.isfinite(w) and w > 0)
    return None if values is None else [int(w) if float(w).is_integer() else w for w in values]


def _checked_list(text: str | None, parse, what: str, ok) -> list | None:
    values = parse(text)
    if values is not None:
        bad = [v for v in values if not ok(v)]
        if bad:
            raise click.BadParameter(f"{what}, got {bad[0]!r} in {text!r}")
    return values


# ----------------------------------------------------------------------------- help sections and aliases
DATA, TRAINING, MEASURE, SIZES, CURVATURE, OUTPUT, RUNTIME = (
    "Data", "Training", "What to measure", "Sizes", "Curvature", "Output", "Runtime")
SECTIONS = (DATA, TRAINING, MEASURE, SIZES, CURVATURE, OUTPUT, RUNTIME)
OTHER = "Other"
WORKFLOW = ("train", "analyze", "figures", "report", "reproduce", "sweep")  # the order of `landscape --help`


class _Option(click.Option):
    """An option shown in one --help section; names after its first are hidden aliases (old spellings that
    still work: README commands and scripts from before a rename keep running)."""

    def __init__(self, *args, section: str = OTHER, **kwargs):
        super().__init__(*args, **kwargs)
        self.section = section

    def get_help_record(self, ctx):
        """The help line under the option's first name only."""
        names = self.opts
        self.opts = names[:1]
        try:
            return super().get_help_record(ctx)
        finally:
            self.opts = names


def option(section: str, *decls, **kwargs):
    """``click.option`` in a --help section; every default is shown."""
    return click.option(*decls, cls=_Option, section=section, show_default=True, **kwargs)


class _Command(click.Command):
    """A command whose --help lists its options section by section (data, sizes, curvature, ...)."""

    def format_options(self, ctx, formatter):
        records: dict[str, list] = {}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is not None:
                records.setdefault(getattr(param, "section", OTHER), []).append(record)
        for name in (*SECTIONS, OTHER):
            if name in records:
                with formatter.section(f"{name} options" if name != OTHER else "Other options"):
                    formatter.write_dl(records[name])


class _Choice(click.Choice):
    """A choice whose refusal suggests the nearest valid value ("did you mean ...?")."""

    def convert(self, value, param, ctx):
        """The value, or a usage error naming the choices and the closest one."""
        if isinstance(value, str) and value not in self.choices:  # cross-entropy = cross_entropy
            value = next((v for v in (value.replace("_", "-"), value.replace("-", "_")) if v in self.choices), value)
        if isinstance(value, str) and value not in self.choices:
            self.fail(f"{value!r} is not one of {', '.join(self.choices)}{did_you_mean(value, self.choices)}",
                      param, ctx)
        return super().convert(value, param, ctx)


def did_you_mean(word: str, candidates) -> str:
    """' (did you mean X?)' for the closest candidate to a misspelled ``word``, or ''."""
    import difflib

    close = difflib.get_close_matches(str(word), [str(c) for c in candidates], n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


# ----------------------------------------------------------------------------- the runtime, once per command
def set_threads(threads: int | None) -> None:
    """--threads N: torch's intra-op and inter-op thread pools (None: torch's default, every core)."""
    if threads is None:
        return
    import torch

    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(threads)
    except RuntimeError:  # settable only before the process's first inter-op work (a second command in tests)
        pass


_RUNTIME_OPTIONS = (
    option(DATA, "--data-root", type=click.Path(), default=None, envvar="LANDSCAPE_DATA_ROOT",
           help="Folder holding the datasets (env LANDSCAPE_DATA_ROOT; default ./data)."),
    option(DATA, "--cache-dir", type=click.Path(file_okay=False), default=None,
           help="Where decoded datasets are cached (default: ~/.cache/landscape)."),
    option(DATA, "--download", is_flag=True, help="Download cifar10/cifar100 with torchvision if missing."),
    option(RUNTIME, "--device", type=_Choice(["cpu", "cuda"]), default="cpu", help="Where tensors live."),
    option(RUNTIME, "--threads", type=COUNT, default=None,
           help="CPU threads torch may use (default: every core; set it on a shared machine)."),
    option(RUNTIME, "--quiet", is_flag=True, help="No progress bars (results and warnings still print)."),
)


def runtime_options(session: bool = False, announce=None):
    """Add --data-root, --cache-dir, --download, --device, --threads and --quiet to a command and hand it one
    ``runtime`` (a Runtime built here; with ``session``, inside ``distributed.session`` with its process group).

    ``announce(options)``: a first line, printed before torch is imported (seconds on a busy machine).
    """
    import functools
    import os

    def decorate(command):
        @functools.wraps(command)
        def run(*args, **kwargs):
            if announce is not None and not kwargs["quiet"] and os.environ.get("RANK", "0") == "0":
                click.echo(announce(kwargs))
            from .runtime import Runtime

            where = {name: kwargs.pop(name) for name in ("data_root", "cache_dir", "download", "device")}
            set_threads(kwargs.pop("threads"))
            shown = dict(progress=not kwargs.pop("quiet"), echo=click.echo)
            if not session:
                return command(*args, runtime=Runtime(**where, **shown), **kwargs)
            from . import distributed

            with distributed.session(where["device"]) as group:
                return command(*args, runtime=Runtime(**where, **shown, group=group), **kwargs)

        for add in reversed(_RUNTIME_OPTIONS):
            run = add(run)
        return run

    return decorate


class _Commands(_Group):
    """The command group: commands in workflow order, each with sectioned --help."""

    command_class = _Command

    def list_commands(self, ctx):
        return sorted(self.commands, key=lambda n: (WORKFLOW.index(n) if n in WORKFLOW else len(WORKFLOW), n))


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="landscape")
def main():
    """Measure the loss-landscape geometry behind over-parameterization convergence theory.

    The workflow: train a network (or bring checkpoints), analyze its checkpoints, draw the
    figures, write the report; reproduce and sweep run all four over a preset's cells.
    """


# ----------------------------------------------------------------------------- names checked before any work
ARCHITECTURE_EXAMPLES = ("vgg19_bn", *(f"resnet{6 * n + 2}" for n in range(1, 19)), "mlp1", "mlp2", "mlp3", "mlp4")
DATASET_KINDS = ("cifar10", "cifar100", "folder:", "synthetic:")


def check_architecture(arch: str | None) -> None:
    """A one-line error for an unknown architecture, with the nearest known name."""
    if arch is None:
        return
    from .models import check_architecture as check

    try:
        check(arch)
    except LandscapeError as exc:
        depth = re.fullmatch(r"resnet(\d+)", arch)
        if depth:  # the valid depths on either side
            low = max(8, 6 * ((int(depth.group(1)) - 2) // 6) + 2)
            hint = f" (did you mean resnet{low} or resnet{low + 6}?)"
        else:
            hint = did_you_mean(arch, ARCHITECTURE_EXAMPLES)
        raise LandscapeError(f"{exc}{hint}") from None


def check_dataset(name: str | None) -> None:
    """A one-line error for a dataset name of no known kind, with the nearest kind."""
    if name is None or name in DATASET_KINDS[:2] or name.startswith(DATASET_KINDS[2:]):
        return
    kind, sep, rest = name.partition(":")
    hint = did_you_mean(kind + sep, DATASET_KINDS if sep else [k.rstrip(":") for k in DATASET_KINDS])
    if hint and sep:
        hint = hint.replace("?)", f"{rest}?)")
    raise LandscapeError(f"unknown dataset {name!r}: use cifar10, cifar100, folder:PATH or "
                         f"synthetic:separated?n=..&d=..&delta=..{hint}")


def measurement_names(text: str | None) -> list[str]:
    """--measure's names (hyphens or underscores), or the default set; a near miss gets a suggestion."""
    from .settings import MEASUREMENTS

    if text is None:
        return list(DEFAULT_MEASUREMENTS)
    names = [m.strip().replace("-", "_") for m in text.split(",")]
    for name in names:
        if name and name not in MEASUREMENTS:
            raise click.BadParameter(f"unknown measurement {name.replace('_', '-')!r}: choose from "
                                     f"{', '.join(m.replace('_', '-') for m in MEASUREMENTS)}"
                                     f"{did_you_mean(name.replace('_', '-'), [m.replace('_', '-') for m in MEASUREMENTS])}",
                                     param_hint="--measure")
    return names


def unanalyzed_hint(run_dir) -> str | None:
    """'no analysis yet: run `landscape analyze RUN`' for a run with nothing analyzed, else None."""
    from .results import RunDir

    run = RunDir(run_dir)
    if run.is_run() and not (run.analysis.is_dir() and any(run.analysis.iterdir())):
        return f"no analysis yet: run `landscape analyze {run_dir}`"
    return None


@main.command()
@option(DATA, "--arch", default=None, help="Network: vgg19_bn, resnet32, resnet110, resnetD (D = 6n+2), mlpL[_dD].")
@option(DATA, "--dataset", default=None,
        help="cifar10, cifar100, folder:PATH or synthetic:separated?n=..&d=..&delta=...")
@option(DATA, "--width", type=POSITIVE, default=None,
        help="Channel multiplier (over-parameterization; fractions such as 0.25 shrink the network; "
             f"at most {MAX_PARAMETERS:,} parameters; default 1).")
@option(DATA, "--train-subset", type=COUNT, default=None, help="Train on a balanced subset of N images (default: all).")
@option(DATA, "--test-subset", type=COUNT, default=None,
        help="Evaluate on a balanced subset of N test images (default: all).")
@option(DATA, "--label-noise", type=_Number(), default=None,
        help="Fraction p of training labels replaced by another class (default 0).")
@option(DATA, "--augment/--no-augment", default=None,
        help="The recipe's pad-4 crop + flip (default on); off lets a small subset be fitted exactly.")
@option(TRAINING, "--epochs", type=click.IntRange(1, MAX_EPOCHS), default=None,
        help=f"Number of epochs (paper: {PAPER_EPOCHS}; at most {MAX_EPOCHS:,}).")
@option(TRAINING, "--lr", type=POSITIVE, default=None, help=f"Initial learning rate (paper: {PAPER_LR}).")
@option(TRAINING, "--milestones", default=None,
        help="Epochs where lr is x0.1, comma-separated; values < 1 are fractions of --epochs "
             f"(default: {MILESTONES_TEXT} scaled to --epochs).")
@option(TRAINING, "--weight-decay", "--wd", "weight_decay", type=NON_NEGATIVE, default=None,
        help="Weight decay (default 1e-4 ResNet, 5e-4 VGG).")
@option(TRAINING, "--momentum", type=_Number(0.0, below=1.0), default=None,
        help=f"SGD momentum (paper: {PAPER_MOMENTUM}).")
@option(TRAINING, "--batch-size", type=click.IntRange(1, MAX_BATCH_SIZE), default=None,
        help=f"Batch size (paper: 128; at most {MAX_BATCH_SIZE:,}).")
@option(TRAINING, "--seed", type=SEED, default=None, help="Seed for init, subsets, noise, batches (default 0).")
@option(TRAINING, "--train", "train_params", type=_Choice(["all", "hidden"]), default=None,
        help="Train all parameters or only hidden layers (the theorem's setting; default all).")
@option(TRAINING, "--loss", type=_Choice(["cross_entropy", "mse"]), default=None,
        help="Training loss (default cross_entropy; mse = ½‖f(x) − y‖², the theorem's ℓ2 loss).")
@option(TRAINING, "--stop-at-loss", type=NON_NEGATIVE, default=None,
        help="Stop after the first epoch whose training loss is at most this (the sweep's common target; "
             "default: never).")
@option(TRAINING, "--precision", type=_Choice(["auto", "fp32", "bf16"]), default=None,
        help="Training precision (default auto: bf16 autocast on CUDA, fp32 on CPU).")
@option(TRAINING, "--sync-bn", "sync_bn", is_flag=True, default=None,
        help="Under torchrun: batch norm over the global batch (SyncBatchNorm, CUDA), not each rank's part.")
@option(OUTPUT, "--out", required=True, type=click.Path(file_okay=False), help="Run directory.")
@option(OUTPUT, "--save-at", default=None,
        help=f"Checkpoint epochs, 0 to --epochs (default {SAVE_AT_TEXT} scaled to --epochs; the last is always saved).")
@option(OUTPUT, "--track-every", type=COUNT0, default=None,
        help="Record F and ||grad F||^2 every K iterations (default 0: off).")
@option(OUTPUT, "--track-subset", type=COUNT, default=None, help="Examples used by --track-every (default 512).")
@option(OUTPUT, "--track-sharpness-every", type=COUNT0, default=None,
        help="Record λ_max on the tracked examples every K iterations, beside 2/lr (edge of stability; default 0: off).")
@option(OUTPUT, "--tensorboard", type=click.Path(file_okay=False), default=None,
        help="Also write loss, accuracy and lr per epoch, and the --track-every / --track-sharpness-every "
             "scalars, to this TensorBoard folder (needs the tensorboard package; default: none).")
@option(OUTPUT, "--resume", is_flag=True, help="Continue the interrupted run in --out.")
@option(OUTPUT, "--force", is_flag=True,
        help="Start the run in --out even though it holds other files (never over them: refused when "
             "a file the run writes, e.g. log.jsonl or checkpoints/, is already there).")
@runtime_options(session=True, announce=lambda o: f"landscape train: {o['arch'] or 'resuming'} → {o['out']} …")
def train(out, resume, force, tensorboard, runtime, **given):
    """Train a network with the paper's recipe, saving checkpoints for the analysis.

    Under `torchrun --nproc-per-node N` the global batch is split across the N ranks
    (DistributedDataParallel); rank 0 writes the run.
    """
    from .train import TrainConfig, train as run_training

    given["milestones"] = _checked_list(given["milestones"], _float_list, "--milestones needs finite positive numbers",
                                        lambda m: math.isfinite(m) and m > 0)
    given["save_at"] = _checked_list(given["save_at"], _int_list, "--save-at needs epochs ≥ 0", lambda e: e >= 0)
    if not resume and (given["arch"] is None or given["dataset"] is None):
        raise click.UsageError("--arch and --dataset are required (unless --resume)")
    check_architecture(given["arch"])
    check_dataset(given["dataset"])
    config = TrainConfig(arch=given["arch"] or "", dataset=given["dataset"] or "",
                         **{k: v for k, v in given.items() if v is not None and k not in ("arch", "dataset")})
    run = run_training(config, out, runtime, resume=resume, overrides=given, force=force, tensorboard=tensorboard)
    if runtime.is_writer:
        click.echo(f"checkpoints in {run.checkpoints}")


@main.command()
@option(MEASURE, "--preset", type=_Choice(list(PRESET_HELP)), default="quick",
        help="; ".join(f"{name}: {text}" for name, text in PRESET_HELP.items()) + ".")
@option(MEASURE, "--only", multiple=True,
        help="Run only this cell, e.g. resnet32/cifar10 or its seed 1, resnet32/cifar10/seed1 (repeatable; default: "
             "all).")
@option(MEASURE, "--shard", default=None, metavar="I/K",
        help="Machine I of K: run only this machine's deterministic share of the cells (no coordination; "
             "default: all cells).")
@option(DATA, "--cifar10", default="cifar10", help="Dataset standing for CIFAR-10, e.g. folder:cifar10-jpeg.")
@option(DATA, "--cifar100", default="cifar100", help="Dataset standing for CIFAR-100.")
@option(TRAINING, "--seed", type=SEED, default=0,
        help="Added to each cell's seed (the preset's seeds) for its training and analysis.")
@option(OUTPUT, "--out", default=None, type=click.Path(file_okay=False),
        help="Output folder, one sub-folder per cell (required unless --plan).")
@option(OUTPUT, "--plan", "plan_only", is_flag=True,
        help="Only print each cell's estimated training and analysis time and the total (GPU-hours on an "
             "H100, from FLOPs); trains, analyzes and writes nothing.")
@option(OUTPUT, "--calibrate", is_flag=True,
        help="With --plan: time a forward pass, a gradient and a Hessian-vector product of each network on "
             "--device (random weights and images) instead of the FLOP-based unit costs.")
@runtime_options()
def reproduce(preset, out, only, shard, cifar10, cifar100, seed, plan_only, calibrate, runtime):
    """Train, analyze, draw and report every cell of a preset (rerun to resume), or --plan its cost."""
    import time

    from .distributed import launched
    from .reproduce import plan_reproduction
    from .reproduce import reproduce as run_preset

    if calibrate and not plan_only:
        raise click.UsageError("--calibrate goes with --plan (it measures the unit costs of the plan)")
    if plan_only:
        click.echo(plan_reproduction(preset, only=list(only), shard=shard, calibrate=calibrate,
                                     device=runtime.device))
        return
    if out is None:
        raise click.UsageError("Missing option '--out' (needed unless --plan).")
    if launched():
        raise click.UsageError("reproduce runs as one process per machine: spread cells with --shard I/K, or run "
                               "`landscape train` and `landscape analyze` under torchrun for one cell")
    started = time.perf_counter()
    done = run_preset(preset, out, runtime, only=list(only), shard=shard, cifar10=cifar10, cifar100=cifar100,
                      seed=seed)
    if done.folders:
        click.echo(f"done in {time.perf_counter() - started:.0f} s: " + ", ".join(str(f) for f in done.folders))
    if done.report is not None:
        click.echo(f"report: {done.report}")


MEASUREMENT_HELP = ("Comma-separated: dominance, probes, curvature, spectrum, second-order, surface, random-surface, "
                    "interpolation, trajectory (underscores work too; default: all but random-surface and spectrum).")
AT_EPOCHS = "--at-epochs", "--epochs", "epochs"  # --epochs: the name before 0.x, kept working


@main.command()
@click.argument("target", type=click.Path(exists=True))
@option(DATA, "--arch", default=None,
        help="Built-in architecture of checkpoint files (default: read off their keys).")
@option(DATA, "--model", default=None, metavar="MODULE:CALLABLE",
        help="Your own network for checkpoint files: pkg.mod:fn or path/to/file.py:fn, returning an nn.Module.")
@option(DATA, "--model-kwargs", default=None, metavar="JSON",
        help='Keyword arguments for --model, a JSON object, e.g. \'{"width": 2}\'.')
@option(DATA, "--dataset", default=None,
        help="Dataset of checkpoint files: cifar10, cifar100, folder:PATH or synthetic:... (a run knows its own).")
@option(MEASURE, "--measure", "measurements", default=None, help=MEASUREMENT_HELP)
@option(MEASURE, *AT_EPOCHS, type=EPOCHS, default=None,
        help="Checkpoint epochs to analyze, comma-separated (default: all; --epochs still works).")
@option(MEASURE, "--params", type=_Choice(["all", "hidden"]), default=_A.params,
        help="Parameter subset moved by probes, curvature and surfaces.")
@option(MEASURE, "--loss", type=_Choice(["cross_entropy", "mse"]), default=_A.loss,
        help="Loss F is the mean of (default: the run's training loss).")
@option(MEASURE, "--bn-forward", "--bn", "bn", type=_Choice(["frozen", "batch"]), default=_A.bn,
        help="Batch norm in the forward pass: fixed statistics (frozen, which ones: --bn-stats) or each "
             "batch's own statistics.")
@option(MEASURE, "--bn-stats", type=_Choice(["recompute", "checkpoint"]), default=_A.bn_stats,
        help="The fixed batch-norm statistics at each checkpoint: exact statistics of θ on the analyzed "
             "examples (recompute), or the checkpoint's running averages.")
@option(MEASURE, "--bn-interpolation", "--interp-bn", "interpolation_bn",
        type=_Choice(["recompute", "interpolate", "batch"]), default=_A.interpolation_bn,
        help="Batch-norm statistics along interpolations: of each point (recompute), interpolated between "
             "the ends', or each batch's.")
@option(MEASURE, "--interpolation-pairs", "--interp-pairs", "interpolation_pairs", default=_A.interpolation_pairs,
        help="init-final, consecutive, to-final (every checkpoint to the last) or A-B epoch pairs, comma-separated.")
@option(MEASURE, "--precision", type=_Choice(["fp32", "fp64"]), default=_A.precision,
        help="Precision of gradients, probes and curvature (residuals are never bf16).")
@option(MEASURE, "--surface-precision", type=_Choice(["fp32", "fp64", "bf16"]), default=None,
        help="Precision of surface grids (bf16 on CUDA only; default: --precision).")
@option(SIZES, "--subset", type=COUNT, default=None, help="Balanced subset of N training examples (default: all).")
@option(SIZES, "--test-subset", type=COUNT0, default=_A.test_subset,
        help="Balanced subset of at most N test examples (0: the whole test split).")
@option(SIZES, "--seed", type=SEED, default=_A.seed, help="Seed for subsets and random directions.")
@option(SIZES, "--repeats", type=COUNT, default=_A.repeats,
        help="Measure dominance, probes, curvature and the second-order test on K disjoint subsets "
             "of --subset examples (or K direction seeds when the set is too small to split).")
@option(SIZES, "--batch-size", type=COUNT, default=None, help="Evaluation batch size (default 128 CPU, 1024 CUDA).")
@option(SIZES, "--n-gaussian", "--gaussian", "probe_gaussian", type=COUNT0, default=_A.probe_gaussian,
        help="Number of Gaussian probe directions.")
@option(SIZES, "--n-filter", "--filter", "probe_filter", type=COUNT0, default=_A.probe_filter,
        help="Number of filter-normalized probe directions.")
@option(SIZES, "--probe-steps", type=COUNT, default=_A.probe_steps, help="Step magnitudes per sign.")
@option(SIZES, "--probe-range", default=f"{_A.probe_smallest:g},{_A.probe_largest:g}",
        help="Smallest,largest step as fractions of ||theta||.")
@option(SIZES, "--grid-points", "--grid", "surface_points", type=click.IntRange(min=3), default=_A.surface_points,
        help="Surface points per axis.")
@option(SIZES, "--surface-range", type=POSITIVE, default=None, help="Surface half-width (default: the documented rule).")
@option(SIZES, "--interpolation-points", "--interp-points", "interpolation_points", type=click.IntRange(min=3),
        default=_A.interpolation_points, help="Points along each interpolation, ends included.")
@option(SIZES, "--ntk-examples", type=COUNT0, default=_A.ntk_examples,
        help="trajectory: drift of the empirical NTK from the first checkpoint on N examples (0: skip).")
@option(SIZES, "--budget", "budget_minutes", type=POSITIVE, default=None,
        help="Minutes the analysis may take: eigensolve, density, grid and probe settings shrink to fit "
             "(the choice is printed and kept in analysis/budget.json; default: no limit).")
@option(CURVATURE, "--n-top", "--top", "curvature_top", type=COUNT, default=_A.curvature_top,
        help="Number of largest Hessian eigenpairs.")
@option(CURVATURE, "--curvature-subset", type=COUNT0, default=_A.curvature_subset,
        help="Hessian over a balanced subset of N of the analyzed examples (0: all of them).")
@option(CURVATURE, "--sigma", "curvature_sigma", type=NON_NEGATIVE, default=_A.curvature_sigma,
        help="Smoothing std for the smoothed Hessian (0: plain Hessian).")
@option(CURVATURE, "--smoothing-samples", "curvature_samples", type=COUNT, default=_A.curvature_samples,
        help="Perturbations averaged by the smoothed Hessian (with --sigma > 0).")
@option(CURVATURE, "--eig-tol", "curvature_tol", type=NON_NEGATIVE, default=_A.curvature_tol,
        help="Relative tolerance of the Lanczos eigenpairs (residual over |λ|).")
@option(CURVATURE, "--eig-max-matvecs", "curvature_max_matvecs", type=COUNT, default=_A.curvature_max_matvecs,
        help="Most Hessian-vector products of the one Lanczos run for the top and most negative pairs.")
@option(CURVATURE, "--eig-max-basis", "curvature_max_basis", type=click.IntRange(min=4), default=_A.curvature_max_basis,
        help="Lanczos vectors held at once (memory: this many parameter vectors).")
@option(CURVATURE, "--alignment-k", type=COUNT0, default=_A.alignment_k,
        help="Share of the gradient in the top-k Hessian eigenspace (same Lanczos run; 0: off).")
@option(CURVATURE, "--spectrum-probes", type=COUNT, default=_A.spectrum_probes,
        help="spectrum: Rademacher probes of the stochastic Lanczos quadrature.")
@option(CURVATURE, "--spectrum-steps", type=COUNT, default=_A.spectrum_steps,
        help="spectrum: Lanczos steps per probe (probes × steps Hessian-vector products).")
@option(CURVATURE, "--trace-samples", type=COUNT0, default=_A.trace_samples, help="Hutchinson probes for tr(H) (0: skip).")
@option(OUTPUT, "--out", type=click.Path(file_okay=False), default=None,
        help="Where results go when TARGET is a checkpoint file or folder (default: TARGET_analysis next to it).")
@runtime_options(session=True)
def analyze(target, out, arch, model, model_kwargs, dataset, measurements, epochs, probe_range, budget_minutes,
            runtime, **options):
    """Measure gradient dominance, semi-smoothness, curvature, surfaces and interpolations.

    TARGET is a run directory made by `landscape train`, or a checkpoint file or a folder of them
    (ours, bearpaw/pytorch-classification's, Lightning's, plain state_dicts or .safetensors; epochs from
    the file names) together with --dataset and, for your own network, --model. Under
    `torchrun --nproc-per-node N` the analyzed examples are sharded across the N ranks, with the
    numbers of one process.
    """
    from pathlib import Path

    from .analysis import Analysis
    from .sources import is_checkpoint_target

    smallest, largest = (_float_list(probe_range) + [None, None])[:2]
    if smallest is None or largest is None or not 0 < smallest < largest < math.inf:
        raise click.BadParameter("--probe-range needs two increasing finite positive numbers, e.g. 1e-5,0.05")
    for name in ("test_subset", "curvature_subset"):  # 0: all of them
        options[name] = options[name] or None
    settings = AnalysisSettings(
        measurements=measurement_names(measurements), probe_smallest=smallest, probe_largest=largest,
        epochs=epochs, **options)
    check_architecture(arch)
    check_dataset(dataset)
    target = Path(target)
    external = is_checkpoint_target(target)
    network = _network(arch, model, model_kwargs, external)
    if external:
        run_dir = Path(out) if out else (target.with_suffix("").with_name(target.stem + "_analysis")
                                         if target.is_file() else target.with_name(target.name + "_analysis"))
        analysis = Analysis(run_dir, settings, runtime, checkpoint=target, arch=network, dataset=dataset,
                            budget_minutes=budget_minutes)
    else:
        analysis = Analysis(target, settings, runtime, budget_minutes=budget_minutes)
    analysis.run_all()
    if runtime.is_writer:
        click.echo(f"results in {analysis.run.analysis}")


def _network(arch: str | None, model: str | None, model_kwargs: str | None, external: bool):
    """The network of checkpoint files: a built-in --arch name, your --model (a ModelFactory), or None."""
    import json

    if model is None:
        if model_kwargs is not None:
            raise click.UsageError("--model-kwargs goes with --model")
        return arch
    if arch is not None:
        raise click.UsageError("give --arch (a built-in network) or --model (your own), not both")
    if not external:
        raise click.UsageError("--model is for checkpoint files or folders; a run directory knows its network")
    try:
        kwargs = json.loads(model_kwargs) if model_kwargs is not None else {}
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not JSON ({exc.msg} at character {exc.pos})",
                                 param_hint="--model-kwargs") from None
    if not isinstance(kwargs, dict):
        raise click.BadParameter("must be a JSON object, e.g. '{\"width\": 2}'", param_hint="--model-kwargs")
    from .checkpoint import ModelFactory

    return ModelFactory.of(model, kwargs)


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@option(MEASURE, *AT_EPOCHS, type=EPOCHS, default=None,
        help="Checkpoint epochs for the per-checkpoint figures (surfaces, probes), comma-separated "
             f"(default: those of the paper's Figure 1, {FIGURE_EPOCHS_TEXT}, present in a full-length "
             "run; otherwise every analyzed epoch; --epochs still works).")
@option(MEASURE, "--floor", type=NON_NEGATIVE, default=None,
        help="Points with F at or below this do not set the envelope constant c (default 0.01).")
@option(OUTPUT, "--out", type=click.Path(file_okay=False), default=None,
        help="Folder for the figures (default: RUN_DIR/figures).")
def figures(run_dir, out, epochs, floor):
    """Draw the figures of a run from its stored results (PNG and PDF).

    Figure 1 of the paper (F over the gradient / most-negative-curvature plane, 3D and
    contour), ||grad F||^2 against F with the envelope c*F, the semi-smoothness probes, the
    interpolations and the training curves with the extreme Hessian eigenvalues. Nothing is
    recomputed; a figure whose results are absent is skipped and said so.
    """
    from .plots import make_figures
    from .sources import refuse_cell_folder
    from .verdicts import DOMINANCE_F_FLOOR

    refuse_cell_folder(run_dir, "figures")
    result = make_figures(run_dir, out, epochs,
                          floor=DOMINANCE_F_FLOOR if floor is None else floor, echo=click.echo)
    hint = unanalyzed_hint(run_dir)
    if not result.paths:
        raise click.ClickException(f"{run_dir} holds no results to draw: "
                                   + (hint or "run `landscape train` and `landscape analyze` first"))
    click.echo(f"{len(result.paths)} files in {result.paths[0].parent}")
    if hint:
        click.echo(f"{hint} (only the training curves could be drawn)", err=True)


@main.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(file_okay=False))
@option(MEASURE, *AT_EPOCHS, type=EPOCHS, default=None,
        help="Checkpoint epochs for the per-checkpoint figures, when drawn (--epochs still works).")
@option(MEASURE, "--floor", type=NON_NEGATIVE, default=None,
        help="Gradient dominance: points with F at or below this do not set c (default 0.01).")
@option(OUTPUT, "--out", type=click.Path(file_okay=False), default=None,
        help="Folder for report.md/.html/.json (default: RUN_DIR for one run, the runs' common parent for several).")
@option(OUTPUT, "--figures", "figure_mode", type=_Choice(["auto", "redraw", "keep"]), default="auto",
        help="auto: draw the figures unless those in place were drawn from the current results; redraw: always; "
             "keep: embed those already there.")
@option(OUTPUT, "--markdown-summary", is_flag=True, default=False,
        help="Print the README-ready Markdown verdict tables of each RUN_DIR's existing report.json "
             "(nothing is written or recomputed).")
def report(run_dirs, out, figure_mode, epochs, floor, markdown_summary):
    """Write the verdict report of one run, or a combined report of several (one section per cell).

    For each claim of the paper (gradient dominance, semi-smoothness, little help from
    second-order information, monotone interpolation, accuracy reached) it gives the verdict
    (holds / fails / not measured), the numbers, the threshold and what they were computed on.
    Writes report.md, report.html (one run: figures embedded; several: linked) and report.json.
    """
    from .report import markdown_summary as summary_of, read_report_json, write_report
    from .sources import refuse_cell_folder
    from .verdicts import DOMINANCE_F_FLOOR

    if markdown_summary:
        for run_dir in run_dirs:
            if (Path(run_dir) / "sweep.json").is_file():  # a sweep's folder: its predictions and axis tables
                from .sweep import read_sweep_summary
                from .sweep_report import sweep_markdown_summary
                click.echo(sweep_markdown_summary(read_sweep_summary(run_dir)), nl=False)
            else:
                click.echo(summary_of(read_report_json(run_dir)), nl=False)
        return
    for run_dir in run_dirs:
        refuse_cell_folder(run_dir, "report")

    written = write_report(list(run_dirs), out, figures={"auto": "auto", "redraw": True, "keep": False}[figure_mode],
                           epochs=epochs, floor=DOMINANCE_F_FLOOR if floor is None else floor)
    cells = written["cells"]
    for name, verdicts in cells:
        prefix = f"{name}: " if len(cells) > 1 else ""
        for claim in verdicts.claims:
            click.echo(f"{prefix}{claim.title}: {claim.verdict} ({claim.summary})")
    click.echo(f"report in {written['markdown']} and {written['html']}")
    for run_dir in run_dirs:
        hint = unanalyzed_hint(run_dir)
        if hint:
            click.echo(f"{hint} (its claims are not measured)", err=True)


@main.command()
@option(MEASURE, "--preset", type=_Choice(["theorem", "theorem-n", "theorem-depth", "resnet20", "smoke"]), default=None,
        help="A ready sweep: theorem (bias-free ReLU MLPs, m = 16…512, 5 seeds, on δ-separated unit vectors, "
             "ℓ2 loss, η ∝ 1/m), theorem-n (sample sizes 16…256 at one width), theorem-depth (depths 1…8), "
             "resnet20 (widths ¼…2 on a CIFAR-10 subset), smoke (seconds, for tests); default: none, "
             "give --arch, --dataset and --widths.")
@option(DATA, "--arch", default=None, help="resnetD or mlpL[_dD] (--depths replaces D or L).")
@option(DATA, "--dataset", default=None, help="cifar10, folder:PATH or synthetic:separated?n=..&d=..&delta=...")
@option(DATA, "--train-subset", type=COUNT, default=None, help="Balanced subset of N training examples (default: all).")
@option(SIZES, "--widths", default=None, help="Width multipliers, comma-separated (e.g. 0.5,1,2,4; an mlp's m is "
                                                "64 × width, so a multiple of 1/64).")
@option(SIZES, "--depths", default=None, help="Depths, comma-separated (default: the depth in --arch).")
@option(SIZES, "--seeds", default=None, help="Seeds, comma-separated (the spread of every slope; default 0).")
@option(SIZES, "--sizes", default=None,
        help="Sample sizes n, comma-separated: the sample-size axis (synthetic data; default: the dataset's).")
@option(TRAINING, "--target-loss", type=NON_NEGATIVE, default=None, help="Train every cell to this training loss.")
@option(TRAINING, "--max-epochs", type=COUNT, default=None, help="Stop there if the target is not reached.")
@option(TRAINING, "--lr", type=POSITIVE, default=None, help="Learning rate (at the smallest width, see --lr-scaling).")
@option(TRAINING, "--lr-scaling", type=_Choice(["constant", "theorem"]), default=None,
        help="constant: --lr at every width; theorem: η = lr·(smallest width)/width, the theorem's η ∝ 1/m "
             "(default: the preset's; theorem for the theorem preset).")
@option(TRAINING, "--momentum", type=_Number(0.0, below=1.0), default=None, help="SGD momentum (default: the preset's).")
@option(TRAINING, "--batch-size", type=COUNT, default=None, help="Batch size (default: the preset's).")
@option(TRAINING, "--loss", type=_Choice(["cross_entropy", "mse"]), default=None,
        help="Training loss (default: the preset's; mse for theorem).")
@option(TRAINING, "--train", "train_params", type=_Choice(["all", "hidden"]), default=None,
        help="Train all parameters or only hidden layers (default: the preset's).")
@option(OUTPUT, "--out", required=True, type=click.Path(file_okay=False), help="Folder of the sweep's cells and report.")
@option(OUTPUT, "--compare", type=click.Path(file_okay=False), default=None,
        help="Another sweep's folder (e.g. the same grid at the other --lr-scaling): the report lists which "
             "verdicts change against it (default: none).")
@runtime_options()
def sweep(preset, out, compare, runtime, **given):
    """Train and analyze a network at several widths (and depths) and judge each trend against the theory.

    Every cell is trained to the same target loss; the report states, per quantity, the direction
    the theory predicts for wider networks and whether the measured log-log slope agrees, with
    its spread over seeds. Rerun the command to resume.
    """
    import dataclasses
    import time

    from .sweep import SweepConfig, run_sweep, sweep_preset
    from .sweep_report import width_note

    given["widths"] = _widths(given["widths"])
    given["depths"] = _checked_list(given["depths"], _int_list, "--depths needs positive integers", lambda d: d >= 1)
    given["seeds"] = _checked_list(given["seeds"], _int_list, "--seeds needs integers ≥ 0", lambda s: s >= 0)
    given["sizes"] = _checked_list(given["sizes"], _int_list, "--sizes needs integers ≥ 2", lambda n: n >= 2)
    given = {k: v for k, v in given.items() if v is not None}
    check_architecture(given.get("arch"))
    check_dataset(given.get("dataset"))
    if preset:
        config = dataclasses.replace(sweep_preset(preset), **given)
    else:
        missing = [k for k in ("arch", "dataset", "widths") if k not in given]
        if missing:
            raise click.UsageError(f"--{missing[0]} is required without --preset")
        config = SweepConfig(**given)
    started = time.perf_counter()
    summary = run_sweep(config, out, runtime, compare)
    note = width_note(summary)
    if note:
        click.echo(note)
    for q, info in ([] if note else summary["quantities"].items()):
        click.echo(f"{info['label']}: predicted {info['predicted']} with width; measured: {info['judgement']}")
    click.echo(f"done in {time.perf_counter() - started:.0f} s; report: {out}/report.md")
