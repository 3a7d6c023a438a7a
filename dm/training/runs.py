"""Run folders: one configuration in, one JSON file out.

A run of a configuration ``config`` (a frozen dataclass with a ``name()``)
lives in ``<runs_dir>/<config.name()>/``: `dm.training.loop.fit` keeps
``checkpoint.pt`` there while it trains; `finish` writes the final weights
``model.pt`` and then ``result.json``, whose presence marks the run done, so
an experiment's ``run`` returns a stored result without training
(`load_result`) and an interrupted run resumes where it stopped."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from pathlib import Path
from typing import Callable, Optional

import torch

from .. import _checks
from ..data.cache import atomic_write
from ..hardware import hardware

__all__ = ["load_result", "source_sha256", "provenance",
           "timing", "finish", "map_processes", "run_all", "collect_results"]


def _as_json(config) -> dict:
    return json.loads(json.dumps(dataclasses.asdict(config)))


def load_result(config, runs_dir) -> Optional[dict]:
    """The stored result of ``config`` under ``runs_dir``, or None.

    Raises ValueError where the stored result's config is another one."""
    path = Path(runs_dir) / config.name() / "result.json"
    if not path.exists():
        return None
    result = json.loads(path.read_text())
    if result["config"] != _as_json(config):
        raise ValueError(f"{path} holds the result of a different configuration")
    return result


def source_sha256(package=None) -> str:
    """SHA-256 (hex) of the source of the `dm` package, or of the folder ``package``.

    Every file under the folder but caches (``*.py`` and its data files), each as its path relative
    to the folder and its bytes, in sorted order: two results with the same digest were made by the
    same code. Computed once per process for the installed package."""
    if package is None:
        if _SOURCE_SHA256 is None:
            globals()["_SOURCE_SHA256"] = source_sha256(Path(__file__).resolve().parents[1])
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
    """What every ``result.json`` records of where and with what it was made.

    ``{"hardware", "torch", "dm_version", "dm_source_sha256"}``: the hardware (`hardware`), torch's
    version, `dm`'s version and the digest of its source (`source_sha256`)."""
    from .. import __version__

    return {"hardware": hardware(device), "torch": torch.__version__,
            "dm_version": __version__, "dm_source_sha256": source_sha256()}


def timing(trained, pack_size: int = 1) -> dict:
    """What every ``result.json`` records of a run's time (`dm.training.loop.Trained`).

    The wall time over all its sessions, the part of it in evaluations and checkpoints, its share of
    the device (``device_seconds``: a session of a pack of K counts 1/K), each session's start,
    hardware, torch and pack size, and the pack size of the last session."""
    return {"wall_seconds": trained.wall_seconds, "overhead_seconds": trained.overhead_seconds,
            "device_seconds": trained.device_seconds, "segments": trained.segments,
            "pack_size": pack_size}


def finish(out: Path, result: dict, model) -> dict:
    """Write a finished run's ``model.pt`` and ``result.json`` into ``out``, and drop its checkpoint.

    The final weights (of ``model``, a module or its state dict) first, then ``result.json``, whose
    presence marks the run done. Returns ``result`` as a later `load_result` will read it (a JSON
    round trip)."""
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
    """``[function(**kwargs) for kwargs in calls]``, shared out to ``workers`` processes.

    New ("spawn") Python processes, one torch thread each; the results come in the order of
    ``calls``. For small CPU work, whose steps gain little from a second thread and much from a
    second process. ``function``, its arguments and its results must be picklable (a function of a
    module, tensors, modules, dicts); a call's result does not depend on which process made it. With
    ``workers=1``, or a single call, the calls run here, one after another. Raises ValueError unless
    ``workers`` is a positive integer."""
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
    """``run(config, runs_dir, data, **run_options)`` for every configuration; key -> result.

    ``configs``: any key -> config, run in order: stored results load at once, interrupted runs
    resume. Prints how many were stored already, the session's time and, with ``report``, one line
    per run.

    ``packs``: a function that partitions the configurations into lists that train together
    (`dm.experiments.cifar.packs`); ``run`` then takes such a list in place of one configuration and
    returns its results in order (`dm.experiments.cifar.run_packed`). ``workers``: with more than
    one, the calls are shared out to that many processes (`map_processes`). Each run writes its own
    folder, so they do not interfere."""
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


def collect_results(runs_dir, results_dir="results", experiment: Optional[str] = None,
                    full_only: bool = True) -> list:
    """Copy every run's ``result.json`` into the book's results folder; return the paths written.

    ``<runs_dir>/<run name>/result.json`` goes to
    ``<results_dir>/<experiment>/<run name>/result.json``, the layout the results page reads
    (``results/README.md``). ``experiment`` defaults to the runs folder's own name (the notebooks'
    ``cifar100_table1``, ``cifar10_resnet56``, ``imdb``). Only the result files are copied (no
    weights, no checkpoints); with ``full_only``, a smoke-mode result is skipped (the page would
    list it as left out). A run not finished has no result.json and is not copied. Raises
    FileNotFoundError where ``runs_dir`` is no folder."""
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
