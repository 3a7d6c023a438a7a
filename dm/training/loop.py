"""`fit`: the one training loop, for every experiment (a CIFAR run or a pack
of them, an IMDB run, the digits models, one or a grid).

The experiment supplies the `Step` (its model of K members, optimiser and
losses), ``batch(t)``, the learning rate ``lr(t)`` and ``evaluate(done)``;
the loop owns the evaluation cadence, the members' checkpoints and exact
resume, timing, the non-finite check and the progress line. A run's folder
layout and its result file are `dm.training.runs`'."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Callable, NamedTuple, Optional, Sequence

import torch

from ..data.cache import atomic_write
from ..hardware import hardware, synchronize
from ..packed import join_states, split_state
from .step import Step

__all__ = ["Member", "Trained", "fit", "checkpoint_iteration"]


class Member(NamedTuple):
    """One of the K runs a step trains: its name (in messages), its
    configuration as a dict (checked against its checkpoint) and its
    folder (None: trained in memory, never checkpointed)."""
    name: str
    config: dict
    out: Optional[Path] = None


class Trained(NamedTuple):
    """What `fit` returns per member once the last iteration is done."""
    history: dict            # measure -> one value per evaluation
    wall_seconds: float      # training time over all sessions of the run
    overhead_seconds: float  # the part of it spent in evaluations and checkpoints
    segments: list           # one record per session: first iteration, hardware, torch, pack size
    device_seconds: float    # the run's share of the device: each session's time / its pack size


class _Progress:
    """The state `fit` checkpoints beside the model: where training is, the
    histories, the clocks of earlier sessions and the loss since the last
    evaluation."""

    def __init__(self, members: Sequence[Member], measures: Sequence[str], device):
        k = len(members)
        self.start, self.loss_count = 0, 0
        self.histories = [{key: [] for key in ("iteration", "lr", "train_loss", *measures)} for _ in members]
        self.walls, self.overheads, self.devices = [0.0] * k, [0.0] * k, [0.0] * k
        self.segments = [[] for _ in members]
        self.loss_sums = torch.zeros(k, device=device)


def checkpoint_iteration(out: Path) -> int:
    """The iteration ``out/checkpoint.pt`` was written at (0 without one)."""
    checkpoint = Path(out) / "checkpoint.pt"
    if not checkpoint.exists():
        return 0
    return torch.load(checkpoint, map_location="cpu", weights_only=False)["iteration"]


def fit(step: Step, members: Sequence[Member], *, batch: Callable[[int], tuple],
        lr: Callable[[int], float], evaluate: Callable[[int], list], iterations: int, eval_every: int,
        checkpoint_every: Optional[int] = None, measures: Sequence[str] = ("test_accuracy",),
        eval_at: Sequence[int] = (), progress: bool = False, stop_at: Optional[int] = None,
        extra_state: Optional[dict] = None, check_finite: bool = True) -> Optional[list]:
    """Train iterations ``0 .. iterations - 1`` of ``step``'s K members,
    resumed from their checkpoints if they have any, and return one
    `Trained` per member (None when stopped by ``stop_at``).

    Iteration ``t`` sets the learning rate ``lr(t)`` (times a param group's
    ``"lr_mult"``) and calls ``step(*batch(t))``; ``batch`` must draw by
    position (`dm.data.samplers.seed_at`). ``evaluate(done)`` returns K
    dicts of measures (names from ``measures``), recorded beside the
    iteration, the learning rate and the mean training loss, every
    ``eval_every`` iterations, at each of ``eval_at`` and at the end.
    Checkpoints (members with a folder) come every ``checkpoint_every``
    (each member's part of the packed state, `dm.packed.split_state`, in
    the format of a run of its own; process 0 of a data-parallel run alone
    writes). ``extra_state``: more objects with ``state_dict`` to checkpoint.
    Raises FloatingPointError on a non-finite training loss (unless
    ``check_finite`` is False: a study of divergence records it), ValueError
    on checkpoints of another configuration or iteration."""
    members, device = list(members), step.device
    if len(members) != step.members:
        raise ValueError(f"the step trains {step.members} members, got {len(members)}")
    extra = {"grad_scaler": step.scaler, **(extra_state or {})}
    state = _Progress(members, measures, device)
    _resume(state, members, step, extra)
    writes = step.rank == 0 and all(m.out is not None for m in members)
    checkpoint_every = checkpoint_every or iterations
    eval_at = set(eval_at)
    bar = _bar(members, iterations, state.start) if progress and step.rank == 0 else None
    for segment in state.segments:
        segment.append({"start": state.start, "hardware": hardware(device), "torch": torch.__version__,
                        "pack_size": len(members), **({"world_size": step.world} if step.world > 1 else {})})
    step.model.train()
    synchronize(device)
    t0, paused, first_evaluation = time.perf_counter(), 0.0, True
    for it in range(state.start, iterations):
        for group in step.optimizer.param_groups:
            group["lr"] = lr(it) * group.get("lr_mult", 1.0)
        state.loss_sums += step(*batch(it))
        state.loss_count += 1
        done = it + 1
        if bar is not None:
            bar.update(1)
        is_eval = done % eval_every == 0 or done in eval_at or done == iterations
        is_checkpoint = (done % checkpoint_every == 0 and done < iterations) or done == stop_at
        stopping = stop_at is not None and stop_at <= done < iterations
        if not (is_eval or is_checkpoint or stopping):
            continue
        synchronize(device)
        pause = time.perf_counter()
        if is_eval:
            _record(state, members, evaluate(done), done, lr(done - 1), check_finite)
            if bar is not None:
                _show(bar, state, measures, first_evaluation, t0, pause, paused, done, iterations, eval_every)
            first_evaluation = False
        if is_checkpoint and writes:
            now = time.perf_counter()
            _save(state, members, step, extra, done, now - t0, paused + now - pause)
        paused += time.perf_counter() - pause
        if stopping:
            return _close(bar, None)
    synchronize(device)
    elapsed, k = time.perf_counter() - t0, len(members)
    return _close(bar, [Trained(history, wall + elapsed, overhead + paused, segments, share + elapsed * step.world / k)
                        for history, wall, overhead, segments, share
                        in zip(state.histories, state.walls, state.overheads, state.segments, state.devices)])


def _record(state: _Progress, members, measured: list, done: int, lr: float, check_finite: bool) -> None:
    """Append one evaluation to every member's history; with
    ``check_finite``, raise on a non-finite training loss."""
    means = (state.loss_sums / max(state.loss_count, 1)).tolist()
    for member, history, values, mean in zip(members, state.histories, measured, means):
        history["iteration"].append(done)
        history["lr"].append(lr)
        history["train_loss"].append(mean)
        for key, value in values.items():
            history[key].append(value)
        if check_finite and not math.isfinite(mean):
            raise FloatingPointError(f"{member.name}: training loss is {mean} at iteration {done}")
    state.loss_sums.zero_()
    state.loss_count = 0


def _resume(state: _Progress, members, step: Step, extra: dict) -> None:
    """Load the members' checkpoints into ``step`` and ``state``, if every
    member has one (all at one iteration, each of its own configuration)."""
    paths = [m.out / "checkpoint.pt" for m in members if m.out is not None]
    present = [p.exists() for p in paths]
    if not any(present):
        return
    label = _label(members)
    if not all(present) or len(paths) < len(members):
        raise ValueError(f"{label}: only some members have a checkpoint "
                         f"({sum(present)} of {len(members)}); pack runs that are at the same iteration")
    saved = [torch.load(p, map_location=step.device, weights_only=False) for p in paths]
    for member, path, checkpoint in zip(members, paths, saved):
        if checkpoint["config"] != member.config:
            raise ValueError(f"{path} belongs to a different configuration")
    at = sorted({checkpoint["iteration"] for checkpoint in saved})
    if len(at) > 1:
        raise ValueError(f"{label}: the members' checkpoints are at different iterations {at}; "
                         f"pack runs that are at the same iteration")
    step.model.load_state_dict(join_states([c["model"] for c in saved]))
    step.optimizer.load_state_dict(join_states([c["optimizer"] for c in saved]))
    for key, obj in extra.items():
        if key in saved[0].get("extra", {}):
            obj.load_state_dict(join_states([c["extra"][key] for c in saved]))
    state.start, state.loss_count = saved[0]["iteration"], saved[0]["loss_count"]
    state.histories = [c["history"] for c in saved]
    state.walls = [c["wall_seconds"] for c in saved]
    state.overheads = [c["overhead_seconds"] for c in saved]
    state.devices = [c.get("device_seconds", c["wall_seconds"]) for c in saved]
    state.segments = [c["segments"] for c in saved]
    state.loss_sums = torch.tensor([c["loss_sum"] for c in saved], device=step.device)


def _save(state: _Progress, members, step: Step, extra: dict, iteration: int, elapsed: float,
          paused: float) -> None:
    """Write every member's checkpoint: its part of the packed states, and
    its clocks as of now (``elapsed``: this session's time, ``paused``: the
    part of it in evaluations and checkpoints)."""
    k = len(members)
    models = split_state(step.model.state_dict(), k)
    optimizers = split_state(step.optimizer.state_dict(), k)
    extras = {key: split_state(obj.state_dict(), k) for key, obj in extra.items()}
    sums = state.loss_sums.tolist()
    for i, member in enumerate(members):
        checkpoint = {"config": member.config, "iteration": iteration, "model": models[i],
                      "optimizer": optimizers[i], "history": state.histories[i],
                      "wall_seconds": state.walls[i] + elapsed, "overhead_seconds": state.overheads[i] + paused,
                      "device_seconds": state.devices[i] + elapsed * step.world / k,
                      "segments": state.segments[i], "loss_sum": sums[i], "loss_count": state.loss_count,
                      "extra": {key: parts[i] for key, parts in extras.items()}}
        atomic_write(member.out / "checkpoint.pt", lambda p: torch.save(checkpoint, p))


def _bar(members, iterations: int, start: int):
    from tqdm.auto import tqdm

    return tqdm(total=iterations, initial=start, desc=_label(members), leave=False)


def _label(members) -> str:
    """A run's name, or a pack's first member's in "pack of K (name, ...)"."""
    return members[0].name if len(members) == 1 else f"pack of {len(members)} ({members[0].name}, ...)"


def _show(bar, state: _Progress, measures, first: bool, t0: float, pause: float, paused: float,
          done: int, iterations: int, eval_every: int) -> None:
    """The first member's last measure on the bar; after a session's first
    evaluation, the time per 1000 iterations and the run's estimated total."""
    shown = state.histories[0].get(measures[0]) if measures else None
    if shown:
        bar.set_postfix({measures[0]: f"{shown[-1]:.3f}"})
    if first:
        per_step = (pause - t0 - paused) / (done - state.start)  # steps only
        evaluation = time.perf_counter() - pause
        total = per_step * iterations + evaluation * -(-iterations // eval_every)
        bar.write(f"{bar.desc}: {1000 * per_step:.1f} s per 1000 iterations measured here "
                  f"({hardware(state.loss_sums.device)}); "
                  f"the whole run: about {total / 60:.1f} min")


def _close(bar, value):
    if bar is not None:
        bar.close()
    return value
