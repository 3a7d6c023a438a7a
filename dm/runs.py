"""Run folders and the training loop shared by the experiments (CIFAR in
`dm.experiments`, IMDB in `dm.sentiment`): one configuration in, one JSON
file out.

A run of a configuration ``config`` (a frozen dataclass with a ``name()``)
lives in ``<runs_dir>/<config.name()>/``. While it trains, `train` keeps
``checkpoint.pt`` there (written atomically every ``checkpoint_every``
iterations); `finish` writes the final weights ``model.pt`` and then
``result.json``, whose presence marks the run done. So:

- calling an experiment's ``run`` again returns the stored result without
  training (`load_result`, which also checks that the stored configuration
  is the one asked for);
- a run that was interrupted (a Colab disconnect, a killed process) resumes
  from its last checkpoint and reaches the same numbers as an uninterrupted
  run (bitwise on a CPU; on a GPU up to cuDNN's nondeterminism).

Seeding: randomness is a function of the seed and the position in training,
never of a generator's history (`seed_at`): the batch order of epoch ``e``
comes from a generator seeded with ``seed_at(seed, e)``, anything drawn at
iteration ``t`` from one seeded with ``seed_at(seed, t)``. That is what makes
resuming exact without saving generator states.

The notebooks' switch between a full run and a smoke run is `mode`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import platform
import time
from pathlib import Path
from typing import Callable, NamedTuple, Optional

import torch

from . import _checks
from .packed import join_states, split_state

__all__ = [
    "seed_at", "epoch_batches", "short_hash", "method_tag", "changes_tag", "atomic_write", "load_result", "resolve_device", "hardware",
    "synchronize", "default_root", "md5", "drive_folder", "drive_data_root", "collect_results", "smoke_scratch", "Trained", "checkpoint_iteration", "train", "train_pack", "source_sha256", "provenance", "timing", "finish", "run_all", "mode", "mode_banner", "describe_runs",
]


def seed_at(seed: int, position: int, stream: int = 0) -> int:
    """The seed of the generator used at ``position`` (an epoch or an
    iteration) of a run seeded with ``seed``; ``stream`` keeps two kinds of
    randomness drawn at the same position apart (2**48 apart, beyond any
    ``seed * 1_000_003 + position`` of a real run)."""
    return seed * 1_000_003 + position + stream * 2 ** 48


def epoch_batches(seed: int, n: int, batch_size: int, device) -> Callable[[int], torch.Tensor]:
    """The uniform sampler the trainers share: ``batch(it)`` is the index
    tensor (on ``device``) of iteration ``it``'s batch, the ``k``-th slice of
    ``batch_size`` of epoch ``e``'s permutation of ``range(n)``, where ``e, k
    = divmod(it, n // batch_size)`` and the permutation comes from a generator
    seeded with ``seed_at(seed, e)``: a function of the position alone, so a
    resumed run draws the same batches. One permutation is kept at a time."""
    per_epoch = n // batch_size
    generator = torch.Generator()
    order = {"epoch": -1, "indices": None}

    def batch(it: int) -> torch.Tensor:
        epoch, k = divmod(it, per_epoch)
        if epoch != order["epoch"]:
            generator.manual_seed(seed_at(seed, epoch))
            order["indices"] = torch.randperm(n, generator=generator).to(device)
            order["epoch"] = epoch
        return order["indices"][k * batch_size:(k + 1) * batch_size]

    return batch


def short_hash(obj) -> str:
    """Eight hex digits identifying a JSON-able object (for unique names)."""
    return hashlib.sha1(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:8]


def method_tag(config) -> str:
    """The method part of a run's name: ``"CCE"``, ``"GCE-DN-q0.7"``,
    ``"DM-lam0.5-beta8"`` (from ``config.method``, ``lam``, ``beta``, ``gce_q``)."""
    if config.method == "DM":
        return f"DM-lam{config.lam:g}-beta{config.beta:g}"
    if config.method.startswith("GCE"):
        return f"{config.method}-q{config.gce_q:g}"
    return config.method


def changes_tag(config, named) -> list:
    """``["x<hash>"]`` if ``config`` differs from ``named`` (the same class
    built from only the fields its name shows), else ``[]``: two configs
    whose readable names agree still get different folder names."""
    if config == named:
        return []
    changed = {k: v for k, v in dataclasses.asdict(config).items() if v != getattr(named, k)}
    return ["x" + short_hash(changed)]


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """``write(tmp)`` then rename ``tmp`` to ``path``: a reader (or a resumed
    run after a crash) sees the old file or the new one, never half of one."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


def _as_json(config) -> dict:
    return json.loads(json.dumps(dataclasses.asdict(config)))


def load_result(config, runs_dir) -> Optional[dict]:
    """The stored result of ``config`` under ``runs_dir``, or None."""
    path = Path(runs_dir) / config.name() / "result.json"
    if not path.exists():
        return None
    result = json.loads(path.read_text())
    if result["config"] != _as_json(config):
        raise ValueError(f"{path} holds the result of a different configuration")
    return result


def resolve_device(device) -> torch.device:
    """``device``, or CUDA when available and the CPU otherwise."""
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(device)


def cpu_model() -> str:
    """The CPU's model name (from ``/proc/cpuinfo`` where there is one)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def hardware(device: torch.device = torch.device("cpu")) -> str:
    """The GPU's name; or the CPU's model, the vector kernels torch uses on it
    (they change a seeded run's rounding) and the number of torch threads."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    threads = torch.get_num_threads()
    return (f"CPU ({cpu_model()}, {torch.backends.cpu.get_cpu_capability()} kernels, "
            f"{threads} thread{'s' if threads > 1 else ''})")


def synchronize(device: torch.device) -> None:
    """Wait for the GPU's queued work (before reading a wall clock)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Trained(NamedTuple):
    """What `train` returns once the last iteration is done (one per member
    of a pack, from `train_pack`)."""
    history: dict            # measure -> one value per evaluation
    wall_seconds: float      # training time over all sessions of the run
    overhead_seconds: float  # the part of it spent in evaluations and checkpoints
    segments: list           # one record per session: first iteration, hardware, torch, pack size
    device_seconds: float    # the run's share of the device: each session's time / its pack size


def checkpoint_iteration(out: Path) -> int:
    """The iteration ``out/checkpoint.pt`` was written at (0 without one)."""
    checkpoint = Path(out) / "checkpoint.pt"
    if not checkpoint.exists():
        return 0
    return torch.load(checkpoint, map_location="cpu", weights_only=False)["iteration"]


def train(config, out: Path, *, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
          step: Callable[[int], torch.Tensor], evaluate: Callable[[int], dict], **options) -> Optional[Trained]:
    """The training loop of one run: iterations ``0 .. iterations - 1``,
    resumed from ``out/checkpoint.pt`` if there is one (written for this
    ``config``). `train_pack` with a pack of one: ``step(t)`` returns the
    batch's loss as a 0-d tensor, ``evaluate(done)`` one dict; ``options``
    as there."""
    trained = train_pack([config], [out], model=model, optimizer=optimizer,
                         step=lambda it: step(it).reshape(1), evaluate=lambda done: [evaluate(done)], **options)
    return None if trained is None else trained[0]


def train_pack(configs: list, outs: list, *, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
               step: Callable[[int], torch.Tensor], evaluate: Callable[[int], list],
               lr: Callable[[int], float], iterations: int, eval_every: int, checkpoint_every: int,
               device: torch.device, measures: tuple = ("test_accuracy",), progress: bool = True,
               stop_at: Optional[int] = None, show: str = "test_accuracy",
               extra_state: Optional[dict] = None, write: bool = True,
               world_size: int = 1) -> Optional[list]:
    """The training loop the experiments share, for a pack of K runs trained
    as one model on the same batches (K = 1: one run, `train`): iterations
    ``0 .. iterations - 1``, resumed from the members' checkpoints
    (``outs[k]/checkpoint.pt``, written for ``configs[k]``) if there are any.

    ``model`` and ``optimizer`` hold the K members packed by `dm.packed.split_state`'s
    rule (every tensor of their states is the members' tensors concatenated
    along dim 0); each member's checkpoint holds its own part, in the format
    of a run of its own, so a run checkpointed in a pack resumes alone and
    the other way round.

    ``step(t)`` does iteration ``t`` (draw a batch, forward, backward,
    ``optimizer.step()``) at the learning rate ``lr(t)``, already set in the
    optimizer (times a param group's ``"lr_mult"``, if it has one), and
    returns the members' losses as a ``[K]`` tensor; it must draw its
    randomness by `seed_at`. ``evaluate(done)`` returns the members'
    measurements after ``done`` iterations, a list of K ``{name: value}``
    (names from ``measures``; a measure left out keeps an empty list),
    appended to each member's history beside the iteration, its learning
    rate and the mean training loss since the last evaluation. Evaluations
    come every ``eval_every`` iterations and at the end; checkpoints every
    ``checkpoint_every`` (not at the end: `finish` supersedes them). Nothing
    is read back from the device between them.

    ``stop_at``: stop after that many iterations, as an interruption would
    (for tests), writing the checkpoints there; returns None then. A tqdm
    bar with ``progress``, showing the first member's last value of the
    measure ``show``; then, after the first evaluation of each session, a
    line with the measured time per 1000 iterations and the estimated total.
    ``extra_state``: more objects with ``state_dict``/``load_state_dict``
    (a gradient scaler, say), checkpointed and restored with the model.
    ``write``: write the checkpoints (False in all processes of a
    data-parallel run but the first); ``world_size``: the number of
    devices the run trains on (data-parallel processes), by which its
    ``device_seconds`` count.

    Returns one `Trained` per member. Each member's ``wall_seconds`` is the
    time its training took (a session of a pack counts whole for each
    member); ``device_seconds`` its share of the device (a session's time
    over its pack size), which sums to the device time a table took.
    """
    configs, outs = list(configs), [Path(out) for out in outs]
    size = len(configs)
    if size == 0 or len(outs) != size:
        raise ValueError(f"need one folder per configuration, got {len(configs)} configurations "
                         f"and {len(outs)} folders")
    extra_state = extra_state or {}
    checkpoints = [out / "checkpoint.pt" for out in outs]
    label = configs[0].name() if size == 1 else f"pack of {size} ({configs[0].name()}, ...)"
    histories = [{key: [] for key in ("iteration", "lr", "train_loss", *measures)} for _ in configs]
    start, loss_count = 0, 0
    walls, overheads, devices = [0.0] * size, [0.0] * size, [0.0] * size
    segments = [[] for _ in configs]
    loss_sums = torch.zeros(size, device=device)
    present = [c.exists() for c in checkpoints]
    if any(present):
        if not all(present):
            raise ValueError(f"{label}: only some members have a checkpoint "
                             f"({sum(present)} of {size}); pack runs that are at the same iteration")
        states = [torch.load(c, map_location=device, weights_only=False) for c in checkpoints]
        for config, checkpoint, state in zip(configs, checkpoints, states):
            if state["config"] != dataclasses.asdict(config):
                raise ValueError(f"{checkpoint} belongs to a different configuration")
        iterations_at = sorted({state["iteration"] for state in states})
        if len(iterations_at) > 1:
            raise ValueError(f"{label}: the members' checkpoints are at different iterations "
                             f"{iterations_at}; pack runs that are at the same iteration")
        model.load_state_dict(join_states([state["model"] for state in states]))
        optimizer.load_state_dict(join_states([state["optimizer"] for state in states]))
        start, loss_count = states[0]["iteration"], states[0]["loss_count"]
        histories = [state["history"] for state in states]
        walls = [state["wall_seconds"] for state in states]
        overheads = [state["overhead_seconds"] for state in states]
        devices = [state.get("device_seconds", state["wall_seconds"]) for state in states]
        segments = [state["segments"] for state in states]
        loss_sums = torch.tensor([state["loss_sum"] for state in states], device=device)
        for key, obj in extra_state.items():
            if key in states[0].get("extra", {}):
                obj.load_state_dict(join_states([state["extra"][key] for state in states]))

    def save_checkpoints(iteration: int, elapsed: float, paused: float) -> None:
        # elapsed: this session's time so far; paused: the part of it in evaluations and checkpoints
        members = zip(split_state(model.state_dict(), size), split_state(optimizer.state_dict(), size))
        extras = {key: split_state(obj.state_dict(), size) for key, obj in extra_state.items()}
        sums = loss_sums.tolist()
        for k, (model_state, optimizer_state) in enumerate(members):
            state = {"config": dataclasses.asdict(configs[k]), "iteration": iteration,
                     "model": model_state, "optimizer": optimizer_state, "history": histories[k],
                     "wall_seconds": walls[k] + elapsed, "overhead_seconds": overheads[k] + paused,
                     "device_seconds": devices[k] + elapsed * world_size / size, "segments": segments[k],
                     "loss_sum": sums[k], "loss_count": loss_count,
                     "extra": {key: parts[k] for key, parts in extras.items()}}
            atomic_write(checkpoints[k], lambda p: torch.save(state, p))

    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=iterations, initial=start, desc=label, leave=False)
    for member in segments:
        member.append({"start": start, "hardware": hardware(device), "torch": torch.__version__,
                       "pack_size": size, **({"world_size": world_size} if world_size > 1 else {})})
    model.train()
    synchronize(device)
    t0 = time.perf_counter()
    paused = 0.0  # this session's time in evaluations and checkpoints
    reported = False
    for it in range(start, iterations):
        for group in optimizer.param_groups:
            group["lr"] = lr(it) * group.get("lr_mult", 1.0)
        loss_sums += step(it).detach()
        loss_count += 1
        done = it + 1
        if bar is not None:
            bar.update(1)
        is_eval = done % eval_every == 0 or done == iterations
        is_checkpoint = (done % checkpoint_every == 0 and done < iterations) or done == stop_at
        if is_eval or is_checkpoint:
            synchronize(device)
            pause = time.perf_counter()
        if is_eval:
            means = (loss_sums / max(loss_count, 1)).tolist()
            for k, (history, measured) in enumerate(zip(histories, evaluate(done))):
                history["iteration"].append(done)
                history["lr"].append(lr(done - 1))
                history["train_loss"].append(means[k])
                for key, value in measured.items():
                    history[key].append(value)
                if not math.isfinite(means[k]):
                    raise FloatingPointError(
                        f"{configs[k].name()}: training loss is {means[k]} at iteration {done}")
            loss_sums.zero_()
            loss_count = 0
            if bar is not None and histories[0].get(show):
                bar.set_postfix({show: f"{histories[0][show][-1]:.3f}"})
            if progress and not reported:
                reported = True
                # Steps only: the time of this first evaluation is in `pause`.
                per_step = (pause - t0 - paused) / (done - start)
                evaluation = time.perf_counter() - pause
                evaluations = -(-iterations // eval_every)
                total = per_step * iterations + evaluation * evaluations
                message = (f"{label}: {1000 * per_step:.1f} s per 1000 iterations "
                           f"measured here ({hardware(device)}); the whole run: about "
                           f"{total / 60:.1f} min")
                (bar.write if bar is not None else print)(message)
        if is_checkpoint and write:
            now = time.perf_counter()
            # Times as of now; the save itself counts as overhead below.
            save_checkpoints(done, now - t0, paused + now - pause)
        if is_eval or is_checkpoint:
            paused += time.perf_counter() - pause
        if stop_at is not None and done >= stop_at and done < iterations:
            if bar is not None:
                bar.close()
            return None
    synchronize(device)
    elapsed = time.perf_counter() - t0
    if bar is not None:
        bar.close()
    return [Trained(history, wall + elapsed, overhead + paused, member_segments,
                    share + elapsed * world_size / size)
            for history, wall, overhead, member_segments, share
            in zip(histories, walls, overheads, segments, devices)]


def source_sha256(package=None) -> str:
    """SHA-256 of the source of the `dm` package (or of the folder
    ``package``): every file under its folder but caches (``*.py`` and its
    data files), each as its path relative to the folder and its bytes, in
    sorted order. Two results with the same digest were made by the same
    code. Computed once per process for the installed package."""
    if package is None:
        if _SOURCE_SHA256 is None:
            globals()["_SOURCE_SHA256"] = source_sha256(Path(__file__).resolve().parent)
        return _SOURCE_SHA256
    package = Path(package)
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
            digest.update(path.relative_to(package).as_posix().encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


_SOURCE_SHA256: Optional[str] = None


def provenance(device: torch.device) -> dict:
    """What every ``result.json`` records of where and with what it was
    made: the hardware (`hardware`), torch's version, `dm`'s version and
    the digest of its source (`source_sha256`)."""
    from . import __version__

    return {"hardware": hardware(device), "torch": torch.__version__,
            "dm_version": __version__, "dm_source_sha256": source_sha256()}


def timing(trained: Trained, pack_size: int = 1) -> dict:
    """What every ``result.json`` records of a run's time (`Trained`): the
    wall time over all its sessions, the part of it in evaluations and
    checkpoints, its share of the device (``device_seconds``: a session
    of a pack of K counts 1/K), each session's start, hardware, torch and
    pack size, and the pack size of the last session."""
    return {"wall_seconds": trained.wall_seconds, "overhead_seconds": trained.overhead_seconds,
            "device_seconds": trained.device_seconds, "segments": trained.segments,
            "pack_size": pack_size}


def finish(out: Path, result: dict, model) -> dict:
    """Write the final weights (of ``model``, a module or its state dict),
    then ``result.json`` (its presence marks the run done), and drop the
    checkpoint. Returns ``result`` as a later `load_result` will read it (a
    JSON round trip)."""
    out = Path(out)
    result = json.loads(json.dumps(result))
    state = model.state_dict() if isinstance(model, torch.nn.Module) else model
    atomic_write(out / "model.pt", lambda p: torch.save(state, p))
    atomic_write(out / "result.json", lambda p: p.write_text(json.dumps(result, indent=1)))
    (out / "checkpoint.pt").unlink(missing_ok=True)
    return result


def _one_thread_call(function: Callable, kwargs: dict):
    torch.set_num_threads(1)
    return function(**kwargs)


def map_processes(function: Callable, calls: list, workers: int = 2) -> list:
    """``[function(**kwargs) for kwargs in calls]``, with the calls shared out
    to ``workers`` new ("spawn") Python processes, one torch thread each, and
    the results in the order of ``calls``. For small CPU work, whose steps gain
    little from a second thread and much from a second process.
    ``function``, its arguments and its results must be picklable (a function
    of a module, tensors, modules, dicts); a call's result does not depend on
    which process made it. With ``workers=1``, or a single call, the calls run
    here, one after another."""
    _checks.positive_integer("workers", workers)
    calls = list(calls)
    if workers == 1 or len(calls) < 2:
        return [function(**kwargs) for kwargs in calls]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(min(workers, len(calls)), mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(_one_thread_call, function, kwargs) for kwargs in calls]
        return [future.result() for future in futures]


def run_all(run: Callable, configs: dict, runs_dir, data, *, report: bool = True, workers: int = 1,
            packs: Optional[Callable[[list], list]] = None, **run_options) -> dict:
    """``run(config, runs_dir, data, **run_options)`` for every configuration
    of ``configs`` (any key -> config), in order: stored results load at
    once, interrupted runs resume. Returns key -> result. Prints how many
    were stored already, the session's time and, with ``report``, one line
    per run.

    ``packs``: a function that partitions the configurations into lists
    that train together (`dm.experiments.packs`); ``run`` then takes such a
    list in place of one configuration and returns its results in order
    (`dm.experiments.run_packed`). ``workers``: with more than one, the
    calls are shared out to that many processes (`map_processes`). Each run
    writes its own folder, so they do not interfere."""
    stored = sum(load_result(config, runs_dir) is not None for config in configs.values())
    print(f"{stored} of {len(configs)} runs already stored in {runs_dir}")
    start = time.perf_counter()
    if packs is None:
        calls = [dict(config=config, runs_dir=runs_dir, data=data, **run_options) for config in configs.values()]
        results = dict(zip(configs, map_processes(run, calls, workers)))
    else:
        groups = packs(list(configs.values()))
        calls = [dict(configs=group, runs_dir=runs_dir, data=data, **run_options) for group in groups]
        by_config = {config: result for group, results in zip(groups, map_processes(run, calls, workers))
                     for config, result in zip(group, results)}
        results = {key: by_config[config] for key, config in configs.items()}
        print(f"{len(configs)} runs in {len(groups)} pack{'s' if len(groups) > 1 else ''} "
              f"of {', '.join(str(len(g)) for g in groups)}")
    if report:
        for key, result in results.items():
            label = " ".join(map(str, key)) if isinstance(key, tuple) else str(key)
            print(f"{label:<28} final test accuracy {result['final_test_accuracy']:.3f} "
                  f"({result['wall_seconds'] / 60:.1f} min on {result['hardware']}"
                  + (f", in a pack of {result['pack_size']}" if result.get("pack_size", 1) > 1 else "") + ")")
    print(f"{len(results)} results; this session: {time.perf_counter() - start:.0f} s")
    return results


# --- data folders and the notebooks' set-up ----------------------------------------------

def default_root() -> Path:
    """Where data sets (CIFAR, IMDB, paragraph vectors) are cached:
    ``$DM_DATA`` if set, else ``~/.cache/dm``."""
    return Path(os.environ.get("DM_DATA", Path.home() / ".cache" / "dm"))


def md5(path) -> str:
    """The md5 hex digest of the file at ``path``, read in 1 MiB blocks."""
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def drive_folder(name: str) -> Optional[Path]:
    """On Colab: Google Drive mounted, and the folder ``MyDrive/dm-runs/<name>``
    there (where a notebook keeps its runs, so a recycled machine loses
    nothing); elsewhere None."""
    import sys

    if "google.colab" not in sys.modules:
        return None
    from google.colab import drive

    drive.mount("/content/drive")
    return Path("/content/drive/MyDrive/dm-runs") / name


def drive_data_root() -> Optional[Path]:
    """On Colab: Google Drive mounted, and ``MyDrive/dm-data``, where the
    notebooks keep their downloaded data sets when they keep their runs on
    Drive, so a new virtual machine after a disconnect downloads nothing
    again; elsewhere None."""
    folder = drive_folder("")
    return None if folder is None else folder.parent / "dm-data"


def collect_results(runs_dir, results_dir="results", experiment: Optional[str] = None,
                    full_only: bool = True) -> list:
    """Copy every ``<runs_dir>/<run name>/result.json`` to
    ``<results_dir>/<experiment>/<run name>/result.json``, the layout the
    results page reads (``results/README.md``), and return the paths
    written. ``experiment`` defaults to the runs folder's own name (the
    notebooks' ``cifar100_table1``, ``cifar10_resnet56``, ``imdb``). Only the
    result files are copied (no weights, no checkpoints); with
    ``full_only``, a smoke-mode result is skipped (the page would list it as
    left out). A run not finished has no result.json and is not copied."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        raise FileNotFoundError(f"no runs folder {runs_dir}")
    experiment = experiment or runs_dir.resolve().name
    written = []
    for source in sorted(runs_dir.glob("*/result.json")):
        result = json.loads(source.read_text(encoding="utf-8"))
        if full_only and result.get("mode") != "full":
            print(f"skipped (mode {result.get('mode')!r}, not 'full'): {source}")
            continue
        target = Path(results_dir) / experiment / source.parent.name / "result.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(source.read_bytes())
        written.append(target)
    print(f"copied {len(written)} result.json files from {runs_dir} to {Path(results_dir) / experiment}")
    return written


def smoke_scratch() -> Path:
    """What a smoke-mode notebook runs in: one torch thread (fastest for tiny
    tensors, and robust on a busy machine) and a fresh temporary folder for
    its fabricated data and its runs."""
    import tempfile

    torch.set_num_threads(1)
    return Path(tempfile.mkdtemp(prefix="dm-smoke-"))


# --- the experiment notebooks' switch ------------------------------------------------

def mode() -> str:
    """The experiment notebooks' switch: ``$DM_MODE``, "full" (the paper's
    settings on the real data) or "smoke" (a few iterations on a fabricated
    tiny data set in the real one's format, on a CPU). Default "full"."""
    value = os.environ.get("DM_MODE", "full")
    if value not in ("full", "smoke"):
        raise ValueError(f"DM_MODE must be 'full' or 'smoke', got {value!r}")
    return value


def mode_banner(mode: str, runs: int, data_name: str) -> str:
    """The line an experiment notebook prints above its reproduced table."""
    if mode == "smoke":
        return ("MODE: smoke. These are smoke numbers from a few iterations on fabricated data, "
                "NOT a reproduction:\nthe 'ours' entries stay empty and the paper's numbers are "
                "the target.")
    return f"MODE: full. {runs} runs with the paper's settings on the real {data_name}."


def describe_runs(results, mode: str) -> str:
    """Where and how long: the hardware, the summed training time (as stored
    in each result, so earlier sessions count) and the arithmetic."""
    results = list(results)
    if any(r["mode"] != mode for r in results):
        raise ValueError(f"results from another mode than {mode!r}")
    total = sum(r.get("device_seconds", r["wall_seconds"]) for r in results)
    packed = sum(r.get("pack_size", 1) > 1 for r in results)
    lines = [
        f"MODE: {mode}; torch {torch.__version__}",
        f"hardware: {', '.join(sorted({r['hardware'] for r in results}))}",
        f"total training time over {len(results)} runs: {total:.0f} s ({total / 3600:.2f} h)"
        + (f"; {packed} of them trained in packs, each counting its share of its pack's time"
           if packed else ""),
    ]
    if all("compiled" in r for r in results):
        lines.append(f"compiled: {sorted({r['compiled'] for r in results})}, "
                     f"precision: {sorted({r.get('precision', 'n/r') for r in results})}")
    return "\n".join(lines)


def main(argv=None) -> None:
    """``python -m dm.runs collect-results RUNS_DIR [--results results]
    [--experiment NAME] [--all]``: `collect_results` from the command line."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m dm.runs")
    commands = parser.add_subparsers(dest="command", required=True)
    collect = commands.add_parser(
        "collect-results", help="copy every RUNS_DIR/<run>/result.json into RESULTS/<experiment>/<run>/")
    collect.add_argument("runs_dir", help="a notebook's RUNS_DIR, e.g. runs/cifar100_table1 or, "
                                          "from Google Drive, .../MyDrive/dm-runs/cifar100_table1")
    collect.add_argument("--results", default="results", help="the book's results folder (default: results)")
    collect.add_argument("--experiment", default=None,
                         help="the experiment's folder name (default: RUNS_DIR's own name)")
    collect.add_argument("--all", action="store_true", help="copy smoke-mode results too")
    args = parser.parse_args(argv)
    collect_results(args.runs_dir, args.results, args.experiment, full_only=not args.all)


if __name__ == "__main__":
    main()
