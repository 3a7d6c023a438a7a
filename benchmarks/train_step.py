"""Time whole CIFAR training steps (DM against CCE) and the trainer's images/s.

    python benchmarks/train_step.py [--device cuda] [--steps 50] [--warmup 20] [--quick]
                                    [--parts 1 2 3 4] [--compile]

1. One training step (forward, loss, backward, SGD step; the trainer's own
   precision, `dm.training.step.resolve_precision`: bfloat16 autocast where the
   GPU has it natively, float16 autocast with a gradient scaler on other GPUs,
   float32 on a CPU; channels-last with autocast, as `dm.experiments.cifar.run` does) of a CIFAR ResNet-44
   with 100 classes on a synthetic batch of 256, with ``dm.DMLoss(0.5, 8)``,
   ``dm.CCE`` and ``torch.nn.functional.cross_entropy``. Milliseconds per step
   (median of interleaved repeats) and the ratio DM/CCE.
2. Images per second of three ways to train the same model with CCE on a data
   set in CIFAR-100's shape (a fabricated archive, `dm.data.cifar.fabricate`):
   the trainer (`dm.experiments.cifar.run`, its ``train_images_per_second``, which
   leaves out evaluation time but, as dm.experiments stands, counts the save
   of the checkpoint at the last iteration: a short run pays all of it), the
   compute bound (the step alone on normalised float tensors already on the
   device), and a plain torchvision loop (``datasets.CIFAR100`` + PIL transforms + ``DataLoader`` workers,
   each batch moved to the device). Interleaved repeats, medians.

3. Packed training (`dm.experiments.cifar.run_packed`): images/s of K runs trained
   as one `dm.models.resnet.PackedResNet` (K = 1, 4, 12: Table 1's column is a
   pack of 12; half DM, half CCE) against the same K runs one at a time, the
   achieved TFLOP/s (the model's FLOPs per step counted by
   ``torch.utils.flop_counter``, forward and backward) against the GPU's
   peak where the script knows it, and the projected time of the whole of
   Table 1 (84 runs of 30,000 iterations) on this device at the best K.
4. The trainer packed: `dm.experiments.cifar.run_packed` of the first K rows of a
   Table 1 column (K the largest of ``--packs``; 12 is the whole column) for
   the part-2 number of iterations on the fabricated set,
   after a warm-up run: images/s with batch drawing and augmentation
   included, one evaluation timed (test set and training set, as the
   trainer records them), and the projected Table 1 from these (30,000
   iterations and an evaluation every 1,000 for each pack): what a table
   would take, not only its steps.

``--compile``: ``torch.compile`` the model in parts 3 and 4 (as the
trainer's ``compile=True``; the compilation is in the warm-up, not timed).
``--parts``: which parts to run (default all).

The targets in the output (DM/CCE <= 1.02, trainer/bound >= 0.9,
trainer/plain loop >= 5x, Table 1 within 2 H100-hours) are about a GPU. On a CPU the network's arithmetic
dominates every step, so the loader ratios come out near 1. Defaults depend
on the device (a GPU run takes a few minutes; a CPU run uses fewer steps and
a smaller training set); ``--quick`` is a smoke check (ResNet-8, batch 32).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import dm
import dm.data.cifar
import dm.experiments.cifar
import dm.experiments.tables
import dm.hardware
import dm.models.resnet
import dm.packed
import dm.training.runs
import dm.training.step

DATASET = "cifar100"
NUM_CLASSES = dm.data.cifar.NUM_CLASSES[DATASET]

# Defaults by setting: (depth, batch, warmup, steps, repeats, train_steps, train_size)
DEFAULTS = {
    "cuda": dict(depth=44, batch=256, warmup=20, steps=50, repeats=5, train_steps=400, train_size=50_000,
                 packs=(1, 4, 12)),
    "cpu": dict(depth=44, batch=256, warmup=1, steps=2, repeats=3, train_steps=3, train_size=2_560,
                packs=(1, 4)),
    "quick": dict(depth=8, batch=32, warmup=1, steps=2, repeats=2, train_steps=2, train_size=256,
                  packs=(1, 2)),
}

# Table 1: 84 runs (12 methods x 7 columns) of 30,000 iterations at batch 256.
TABLE1_RUNS, TABLE1_ITERATIONS = 84, 30_000

# Dense 16-bit tensor-core peaks the vendors state (TFLOP/s), by GPU name.
PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L4": 121.0, "T4": 65.0, "V100": 125.0}


# --- timing -------------------------------------------------------------------

def timed(fn, n: int, device: torch.device) -> float:
    """Seconds per call of ``fn`` over ``n`` calls (CUDA events on a GPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(n):
            fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3 / n
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n


def interleaved(samplers: dict, repeats: int) -> dict:
    """``repeats`` samples of each sampler, taken in turn (the order rotating
    every round) so that drift hits all alike."""
    names = list(samplers)
    samples = {name: [] for name in names}
    for r in range(repeats):
        for name in names[r % len(names):] + names[:r % len(names)]:
            samples[name].append(samplers[name]())
    return samples


def spread(values) -> str:
    """(max - min) / median, the noise the median is taken over."""
    return f"spread {(max(values) - min(values)) / statistics.median(values):4.0%}"


# --- the training step (as in dm.experiments.cifar.run) -----------------------------

def trainer_step(model, loss_fn, device, precision, memory_format, lr=0.1, compile=False, members=1):
    """The trainer's own step (`dm.training.step.Step`: autocast, float32
    logits, gradient scaler with fp16, ``torch.compile`` with ``compile``)
    on a copy of ``model`` with the trainer's SGD settings; ``step(x, y)``
    makes ``x`` ``memory_format`` first, as the input pipeline does."""
    model = copy.deepcopy(model).to(device, memory_format=memory_format).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=1e-4)
    step = dm.training.step.Step(model, optimizer, loss_fn, members=members, device=device, precision=precision,
                                 compile=compile)
    return lambda x, y: step(x.contiguous(memory_format=memory_format), y)


def synthetic_batch(batch: int, device, memory_format):
    """A normalised float batch and its labels, already on the device."""
    images = torch.randint(0, 256, (batch, 3, 32, 32), dtype=torch.uint8, device=device)
    x = dm.data.cifar.normalize(images, DATASET).contiguous(memory_format=memory_format)
    return x, torch.randint(0, NUM_CLASSES, (batch,), device=device)


# --- 2. the three ways to feed it ----------------------------------------------

def trainer_sampler(data, args, device, runs_dir: Path, info: dict):
    """Each call: one fresh `dm.experiments.cifar.run` of ``args.train_steps``
    iterations; returns its ``train_images_per_second``."""
    def config(iterations):
        # eval_every/checkpoint_every beyond the run: only the final evaluation.
        return dm.experiments.cifar.Config(dataset=DATASET, model=f"resnet{args.depth}", method="CCE",
                                     iterations=iterations, batch_size=args.batch,
                                     eval_every=10**9, checkpoint_every=10**9)

    def run(iterations, folder):
        result = dm.experiments.cifar.run(config(iterations), runs_dir / folder, data, device=device, precision=args.precision,
                                    progress=False, eval_train=False)
        info.setdefault("results", []).append(result)
        return result["train_images_per_second"]

    run(max(args.warmup, 1), "warmup")  # CUDA context, cuDNN, allocator
    info["results"].clear()
    counter = iter(range(10**9))
    return lambda: run(args.train_steps, f"run{next(counter)}")


def plain_loop_sampler(root: Path, checksums: dict, args, step, device):
    """Each call: ``args.train_steps`` steps fed by a torchvision DataLoader
    with PIL transforms; returns images/s."""
    from torch.utils.data import DataLoader
    from torchvision import transforms

    # The fabricated archive through torchvision's own CIFAR100, with the
    # fabricated files' md5s (as dm.data.cifar.load does it).
    transform = transforms.Compose([
        transforms.RandomCrop(32, padding=4),
        transforms.RandomHorizontalFlip(),
        transforms.ToTensor(),
        transforms.Normalize(dm.data.cifar.MEAN[DATASET], dm.data.cifar.STD[DATASET]),
    ])
    dataset = dm.data.cifar.torchvision_dataset(DATASET, root, train=True, checksums=checksums,
                                           transform=transform)
    cuda = device.type == "cuda"
    loader = DataLoader(dataset, batch_size=args.batch, shuffle=True, drop_last=True,
                        num_workers=args.workers, pin_memory=cuda,
                        persistent_workers=args.workers > 0)

    def batches():
        while True:
            yield from loader

    stream = batches()

    def one():
        x, y = next(stream)
        step(x.to(device, non_blocking=cuda), y.to(device, non_blocking=cuda))

    timed(one, max(args.warmup, 1), device)  # starts the workers
    return lambda: args.batch / timed(one, args.train_steps, device)


# --- main -----------------------------------------------------------------------

def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quick", action="store_true",
                        help="smoke check: ResNet-8, batch 32, a few steps, 256 training images")
    parser.add_argument("--precision", choices=("bf16", "fp16", "fp32"), default=None,
                        help="default: the trainer's choice (dm.training.step.resolve_precision)")
    parser.add_argument("--depth", type=int, help="ResNet depth (default 44; --quick: 8)")
    parser.add_argument("--batch", type=int, help="batch size (default 256; --quick: 32)")
    parser.add_argument("--warmup", type=int, help="untimed steps before timing (default: GPU 20, CPU 1)")
    parser.add_argument("--steps", type=int, help="timed steps per sample in part 1 (default: GPU 50, CPU 2)")
    parser.add_argument("--repeats", type=int, help="samples per variant, median taken (default: GPU 5, CPU 3)")
    parser.add_argument("--train-steps", type=int,
                        help="steps per sample in part 2, iterations per trainer run (default: GPU 400, CPU 3)")
    parser.add_argument("--train-size", type=int, help="training images (default: GPU 50000, CPU 2560)")
    parser.add_argument("--workers", type=int,
                        help="DataLoader workers of the plain loop (default: CPU count, at most 8)")
    parser.add_argument("--packs", type=int, nargs="+",
                        help="pack sizes K of part 3 (default: GPU 1 4 12, CPU 1 4; --quick: 1 2)")
    parser.add_argument("--threads", type=int,
                        help="torch CPU threads (default: torch's; 1 avoids stalls on busy shared cores)")
    parser.add_argument("--parts", type=int, nargs="+", choices=(1, 2, 3, 4), default=(1, 2, 3, 4),
                        help="which parts to run (default: all)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model in parts 3 and 4")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    defaults = DEFAULTS["quick" if args.quick else "cuda" if cuda else "cpu"]
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.workers is None:
        args.workers = 1 if args.quick else min(os.cpu_count() or 1, 8)
    if args.train_size < args.batch:
        parser.error(f"--train-size {args.train_size} is smaller than --batch {args.batch}")
    precision = dm.training.step.resolve_precision(args.precision, device)
    memory_format = torch.channels_last if cuda and precision != "fp32" else torch.contiguous_format
    began = time.perf_counter()

    name = torch.cuda.get_device_name(device) if cuda else platform.processor() or platform.machine()
    print(f"device: {device} ({name}), torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"precision {precision}{' + channels_last' if memory_format == torch.channels_last else ''}")
    if not cuda:
        print("CPU run: the targets are about a GPU. Here the network's arithmetic dominates "
              "every step, so the loader ratios come out near 1.")
    print(f"settings: resnet{args.depth}, {NUM_CLASSES} classes, batch {args.batch}, warmup {args.warmup}, "
          f"median of {args.repeats} interleaved repeats{', --quick' if args.quick else ''}, "
          f"parts {' '.join(map(str, args.parts))}{', compiled (parts 3, 4)' if args.compile else ''}")

    torch.manual_seed(0)
    model = dm.models.resnet.resnet(args.depth, NUM_CLASSES)
    x, y = synthetic_batch(args.batch, device, memory_format)

    if 1 in args.parts:
        loss_figures(model, x, y, args, device, precision, memory_format)
    with tempfile.TemporaryDirectory(prefix="dm-train-step-") as tmp:
        if 2 in args.parts or 4 in args.parts:  # the fabricated data set parts 2 and 4 train on
            root = Path(tmp) / "data"
            n_test = min(10_000, max(args.train_size // 5, 1))
            checksums = dm.data.cifar.fabricate(root, DATASET, n_train=args.train_size, n_test=n_test)
            data = dm.data.cifar.load(DATASET, root, checksums=checksums)
        if 2 in args.parts:
            loader_figures(model, x, y, args, device, precision, memory_format, root, checksums, data, Path(tmp))
        if 3 in args.parts:
            packed_figures(model, x, y, args, device, precision, memory_format)
        if 4 in args.parts:
            packed_trainer_figures(data, args, device, precision, Path(tmp))
    print(f"\ntotal: {time.perf_counter() - began:.0f} s")


def loss_figures(model, x, y, args, device, precision, memory_format):
    """Part 1: the step with each loss."""
    print(f"\n1. training step (forward, loss, backward, SGD step), {args.steps} steps per repeat")
    losses = {"F.cross_entropy": F.cross_entropy,
              "dm.CCE": dm.CCE(check_inputs=False),
              "dm.DMLoss(0.5, 8)": dm.DMLoss(lam=0.5, beta=8.0, check_inputs=False)}
    steps = {label: trainer_step(model, loss, device, precision, memory_format) for label, loss in losses.items()}
    for step in steps.values():
        timed(lambda: step(x, y), args.warmup, device)
    samples = interleaved({label: (lambda s=step: timed(lambda: s(x, y), args.steps, device) * 1e3)
                           for label, step in steps.items()}, args.repeats)
    ms = {label: statistics.median(values) for label, values in samples.items()}
    for label, value in ms.items():
        print(f"  {label:22s} {value:10.2f} ms/step {value / ms['F.cross_entropy']:7.3f}x   "
              f"({spread(samples[label])})")
    best = {label: min(values) for label, values in samples.items()}  # least disturbed
    print(f"  DM/CCE: {ms['dm.DMLoss(0.5, 8)'] / ms['dm.CCE']:.3f} (target <= 1.02); "
          f"of the fastest repeats: {best['dm.DMLoss(0.5, 8)'] / best['dm.CCE']:.3f}")

def loader_figures(model, x, y, args, device, precision, memory_format, root, checksums, data, tmp: Path):
    """Part 2: the trainer against the compute bound and a plain DataLoader loop."""
    print(f"\n2. images/s, CCE: {args.train_size} training images in CIFAR-100's shape "
          f"(fabricated), {args.train_steps} steps per repeat")
    info = {}
    bound_step = trainer_step(model, dm.CCE(check_inputs=False), device, precision, memory_format)
    timed(lambda: bound_step(x, y), args.warmup, device)
    samplers = {
        "trainer": trainer_sampler(data, args, device, tmp / "runs", info),
        "bound": lambda: args.batch / timed(lambda: bound_step(x, y), args.train_steps, device),
        "plain": plain_loop_sampler(root, checksums, args,
                                    trainer_step(model, dm.CCE(check_inputs=False), device, precision, memory_format),
                                    device),
    }
    samples = interleaved(samplers, args.repeats)
    ips = {name: statistics.median(values) for name, values in samples.items()}
    results = info["results"]
    wall = statistics.median(r["wall_seconds"] for r in results)
    overhead = statistics.median(r["overhead_seconds"] for r in results)
    workers = f"{args.workers} worker{'' if args.workers == 1 else 's'}"
    for name, label in (("trainer", "trainer (dm.experiments.cifar.run)"),
                        ("bound", "compute bound (step on device data)"),
                        ("plain", f"plain DataLoader loop ({workers})")):
        print(f"  {label:36s} {ips[name]:10.0f} images/s   ({spread(samples[name])})")
    print(f"  trainer runs: {len(results)} x {args.train_steps} iterations on {results[0]['hardware']}, "
          f"median wall {wall:.2f} s, of which evaluation {overhead:.2f} s (left out of its images/s)")
    print(f"  trainer/bound: {ips['trainer'] / ips['bound']:.3f} (target >= 0.9)")
    print(f"  trainer/plain loop: {ips['trainer'] / ips['plain']:.2f}x (target >= 5x)")


def step_flops(model, x, y) -> int:
    """FLOPs of one training step of ``model`` on the batch ``x`` (forward
    and backward of its convolutions and matrix products, as
    ``torch.utils.flop_counter`` counts them; the loss and the optimizer
    are negligible beside them), counted on a copy on the CPU in float32."""
    from torch.utils.flop_counter import FlopCounterMode

    model = copy.deepcopy(model).cpu().float().train()
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(model(x.cpu().float().contiguous()), y.cpu()).backward()
    return counter.get_total_flops()


def packed_figures(model, x, y, args, device, precision, memory_format):
    """Part 3: K runs as one packed model against one at a time."""
    device_name = dm.hardware.hardware(device)
    flops = step_flops(model, x, y)
    peak = next((value for key, value in PEAK_TFLOPS.items() if key in device_name), None)
    print(f"\n3. packed training (dm.models.resnet.PackedResNet{', compiled' if args.compile else ''}), K runs "
          f"(half DM(0.5, 8), half CCE) on one batch; "
          f"{flops / 1e9:.1f} GFLOP per run and step (forward + backward)")
    single = trainer_step(model, dm.CCE(check_inputs=False), device, precision, memory_format, compile=args.compile)
    timed(lambda: single(x, y), args.warmup, device)
    one_ms = statistics.median(timed(lambda: single(x, y), args.steps, device) for _ in range(args.repeats)) * 1e3
    print(f"  one run at a time: {one_ms:.2f} ms/step, {args.batch / one_ms * 1e3:.0f} images/s")
    best = None
    for k in args.packs:
        members = [dm.DMLoss(0.5, 8.0, check_inputs=False) if i % 2 == 0 else dm.CCE(check_inputs=False)
                   for i in range(k)]
        pack = dm.models.resnet.PackedResNet([model] * k) if k > 1 else model
        loss = dm.packed.Stacked(members) if k > 1 else members[0]
        step = trainer_step(pack, loss, device, precision, memory_format, compile=args.compile, members=k)
        timed(lambda: step(x, y), args.warmup, device)
        ms = statistics.median(timed(lambda: step(x, y), args.steps, device) for _ in range(args.repeats)) * 1e3
        images = k * args.batch / ms * 1e3
        tflops = k * flops / ms * 1e3 / 1e12
        share = f", {tflops / peak:.1%} of the {peak:.0f} TFLOP/s peak" if peak else ""
        table1 = TABLE1_RUNS / k * TABLE1_ITERATIONS * ms / 1e3 / 3600
        print(f"  K = {k:2d}: {ms:9.2f} ms/step, {images:8.0f} images/s ({images * one_ms / args.batch / 1e3:.2f}x "
              f"one at a time), {tflops:7.3f} TFLOP/s{share}; Table 1 at this K: {table1:.1f} h")
        if best is None or table1 < best[1]:
            best = (k, table1)
    print(f"  projected Table 1 ({TABLE1_RUNS} runs x {TABLE1_ITERATIONS} iterations, steps only) on "
          f"{device_name}: {best[1]:.1f} h at K = {best[0]} (target: 2 H100-hours)")



def packed_trainer_figures(data, args, device, precision, tmp: Path):
    """Part 4: `dm.experiments.cifar.run_packed` of a Table 1 column (its first K
    rows, K the largest of ``--packs``; 12 is the whole column), as a table
    runs: the paper's settings but the model, batch and iterations here."""
    import dm.report.paper

    base = dataclasses.replace(dm.experiments.cifar.PAPER_CIFAR100, model=f"resnet{args.depth}",
                               iterations=args.train_steps, batch_size=args.batch,
                               eval_every=10**9, checkpoint_every=10**9)
    column = dm.experiments.tables.table1_columns()[0]
    configs = [dm.experiments.tables.table1_config(row, column, base) for row in dm.experiments.tables.table1_rows()][:max(args.packs)]
    k = len(configs)
    options = dict(device=device, precision=precision, compile=args.compile, progress=False, eval_train=True)
    print(f"\n4. the trainer packed (dm.experiments.cifar.run_packed{', compiled' if args.compile else ''}): "
          f"the first {k} rows of Table 1's column {column['key']}, {args.train_steps} iterations, "
          f"one evaluation (test and training set) at the end")
    warm = [dataclasses.replace(c, iterations=max(args.warmup, 2)) for c in configs]
    dm.experiments.cifar.run_packed(warm, tmp / "warm", data, **options)
    first = dm.experiments.cifar.run_packed(configs, tmp / "packed", data, **options)[0]
    steps_s = first["wall_seconds"] - first["overhead_seconds"]
    per_step = steps_s / args.train_steps
    evaluation = first["overhead_seconds"]
    # Table 1 evaluates every 1,000 iterations, on the whole 50,000-image training set.
    table_evaluation = evaluation * max(1.0, 50_000 / args.train_size)
    evaluations = TABLE1_ITERATIONS // dm.experiments.cifar.PAPER_CIFAR100.eval_every
    table1 = TABLE1_RUNS / k * (TABLE1_ITERATIONS * per_step + evaluations * table_evaluation) / 3600
    print(f"  {1e3 * per_step:.2f} ms/iteration (batch drawing and augmentation included), "
          f"{k * args.batch / per_step:.0f} images/s; one evaluation {evaluation:.2f} s "
          f"({args.train_size} training images)")
    print(f"  projected Table 1 with the trainer ({TABLE1_RUNS} runs in packs of {k}, {TABLE1_ITERATIONS} "
          f"iterations and {evaluations} evaluations each) on {first['hardware']}: {table1:.1f} h")


if __name__ == "__main__":
    main()
