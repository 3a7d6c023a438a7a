"""The command line: ``python -m dm COMMAND ...``.

- ``cifar``: train one CIFAR run (`dm.experiments.cifar.run`; ``--ddp`` under torchrun);
- ``table1``, ``table9``: train a table's cells, or a shard of them, packed;
- ``collect``: print the tables of the CIFAR runs a folder holds beside the paper's;
- ``imdb``: train one IMDB run (`dm.experiments.imdb.run`);
- ``table5``: train every cell of Table 5 once per seed;
- ``collect-results``: copy finished runs' ``result.json`` into the book's ``results/``.

``python -m dm COMMAND --help`` lists each command's flags.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
from pathlib import Path

import torch

from .data import cifar as cifar_data
from .data import imdb as imdb_data
from .data import paragraph_vectors
from .data.cache import atomic_write
from .experiments import cifar, imdb, tables
from .hardware import resolve_device
from .report import banners, paper
from .training.runs import collect_results
from .training.step import PRECISIONS

__all__ = ["main"]

COMMANDS = ("cifar", "table1", "table9", "collect", "imdb", "table5", "collect-results")


# --- one CIFAR run --------------------------------------------------------------------

def _cifar_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m dm cifar",
        description="Train one noisy-label CIFAR run and write its result JSON "
                    "(resuming from a checkpoint if one exists).")
    parser.add_argument("--preset", choices=("paper", "authors"), default="paper",
                        help="the settings every flag below changes: the paper's text (default) or the "
                             "authors' code (AUTHORS_CIFAR100 / AUTHORS_CIFAR10_RESNET56)")
    # Config's flags: only those given change the preset (defaults shown are the paper's).
    for field in dataclasses.fields(cifar.Config):
        flag = "--" + field.name.replace("_", "-")
        shown = f"default: the preset's ({field.default!r} in the paper's)"
        if field.name == "lr_milestones":
            parser.add_argument(flag, type=int, nargs="*", default=argparse.SUPPRESS, help=shown)
        elif isinstance(field.default, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS,
                                help=shown)
        else:
            parser.add_argument(flag, type=type(field.default), default=argparse.SUPPRESS, help=shown)
    parser.add_argument("--runs-dir", default="runs", help="where run folders go (default: runs)")
    parser.add_argument("--fabricated", action="store_true",
                        help="use a tiny fabricated data set in CIFAR's format (smoke checks)")
    _cifar_training_flags(parser)
    parser.add_argument("--ddp", action="store_true",
                        help="data-parallel over the processes torchrun starts, one device each "
                             "(run(..., ddp=True)): torchrun --nproc_per_node=N -m dm cifar --ddp ...")
    return parser


def _cifar_training_flags(parser: argparse.ArgumentParser) -> None:
    # Where CIFAR is and how to train: both CIFAR commands.
    parser.add_argument("--data-root", default=None, help="CIFAR cache folder (default: $DM_DATA or ~/.cache/dm)")
    parser.add_argument("--download", action="store_true", help="download CIFAR if missing")
    parser.add_argument("--device", default=None, help="cuda, cpu, ... (default: cuda if available)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument("--precision", choices=PRECISIONS, default=None,
                        help="bf16/fp16 autocast or fp32 (default: bf16 where the GPU has it, "
                             "else fp16 on a GPU, fp32 on a CPU)")
    parser.add_argument("--no-progress", action="store_true")


def config_from_args(args: argparse.Namespace) -> cifar.Config:
    """The `Config` the command line names: ``--preset``'s, changed by the
    flags given."""
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(cifar.Config) if hasattr(args, f.name)}
    return dataclasses.replace(cifar.preset(args.preset, values.get("dataset", "cifar100")), **values)


def _data(dataset: str, runs_dir, data_root, download: bool, fabricated: bool) -> cifar_data.Cifar:
    """The data set the command line trains on: CIFAR from ``data_root``, or
    a tiny one fabricated in CIFAR's format under ``runs_dir``."""
    if fabricated:
        root = Path(runs_dir) / "fabricated-data"
        return cifar_data.load(dataset, root, checksums=cifar_data.fabricate(root, dataset))
    return cifar_data.load(dataset, data_root, download=download)


def _print_summary(result: dict) -> None:
    print(json.dumps({k: result[k] for k in (
        "name", "best_test_accuracy", "final_test_accuracy", "realised_noise_rate",
        "hardware", "world_size", "wall_seconds")}, indent=1))


def _ddp_main(args: argparse.Namespace, config: cifar.Config) -> int:
    """``--ddp``: one process of a data-parallel run started by torchrun
    (which sets RANK, WORLD_SIZE, LOCAL_RANK and the rendezvous): joins the
    default process group (NCCL on GPUs, each process on ``cuda:LOCAL_RANK``;
    gloo on CPUs), reads the data set in turn (so that a download or a
    fabricated archive is written by one process at a time), trains
    ``config`` with ``run(..., ddp=True)``, and process 0 prints the summary."""
    dist = torch.distributed
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device(args.device) if args.device else resolve_device(None)
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", device_id=device)
    else:
        dist.init_process_group("gloo")
    try:
        data = None
        for turn in range(dist.get_world_size()):
            if turn == dist.get_rank():
                data = _data(config.dataset, args.runs_dir, args.data_root, args.download, args.fabricated)
            dist.barrier()
        result = cifar.run(config, args.runs_dir, data, device=device, precision=args.precision,
                     compile=args.compile, progress=not args.no_progress, ddp=True)
        if dist.get_rank() == 0:
            _print_summary(result)
    finally:
        dist.destroy_process_group()
    return 0


# --- a whole CIFAR table, on one machine or many ------------------------------------

TABLE_DATASETS = {"table1": "cifar100", "table9": "cifar10"}


def _shard_argument(text: str) -> tuple:
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shard takes I/N, e.g. 0/7, got {text!r}") from None
    if count < 1 or not 0 <= index < count:
        raise argparse.ArgumentTypeError(f"--shard I/N needs 0 <= I < N, got {text!r}")
    return index, count


def _table_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m dm {table1,table9,collect}",
        description="Train a share of Table 1 (CIFAR-100) or Table 9 (CIFAR-10), packed where possible, "
                    "or print the tables of the runs a folder holds beside the paper's.")
    commands = parser.add_subparsers(dest="command", required=True)
    for table in ("table1", "table9"):
        sub = commands.add_parser(table, help=f"train {table}'s cells (or a shard of them)")
        sub.add_argument("--rows", nargs="+", default=None, help="only these rows (default: all)")
        sub.add_argument("--columns", nargs="+", default=None,
                         help="only these columns: Table 1's keys (clean s0.2 ... a0.4), Table 9's rates (0.2 ...)")
        sub.add_argument("--shard", type=_shard_argument, default=(0, 1),
                         help="I/N: train the I-th of N shares (0-based: sbatch --array=0-<N-1>); default 0/1")
        sub.add_argument("--dry-run", action="store_true", help="print the share's run names, train nothing")
        sub.add_argument("--max-pack", type=int, default=None, help="at most this many runs to a pack")
        sub.add_argument("--no-pack", action="store_true", help="train one run at a time")
        _cifar_training_flags(sub)
    collect = commands.add_parser("collect", help="print the tables of the runs under --runs-dir")
    for sub in (*(commands.choices[t] for t in ("table1", "table9")), collect):
        sub.add_argument("--runs-dir", default="runs", help="where run folders are (default: runs)")
        sub.add_argument("--preset", choices=("paper", "authors"), default="paper",
                         help="the settings of the table's runs (default: the paper's text)")
        sub.add_argument("--smoke", action="store_true",
                         help="a pipeline check: tiny runs (dm.experiments.cifar.smoke_config) on data fabricated "
                              "in CIFAR's format; their numbers are not a reproduction")
    return parser


def _table_base(table: str, preset_name: str, smoke: bool) -> cifar.Config:
    base = cifar.preset(preset_name, TABLE_DATASETS[table])
    return cifar.smoke_config(base) if smoke else base


def collect(runs_dir, preset_name: str = "paper", smoke: bool = False) -> str:
    """The tables of the runs under ``runs_dir`` (every ``result.json``, at
    any depth) beside the paper's, as the notebooks show them: Table 1 for
    the CIFAR-100 runs, Table 9 for the CIFAR-10 ones, each built from the
    ``preset_name`` preset (`smoke_config` of it with ``smoke``, whose
    numbers are shown alone, as a pipeline check). Results that are in
    neither table (another preset, changed settings) are counted."""
    results = paper.load_results(runs_dir)
    parts, placed = [], 0
    for table, dataset in TABLE_DATASETS.items():
        base = _table_base(table, preset_name, smoke)
        cells_of = paper.table1_cells if table == "table1" else paper.table9_cells
        markdown = paper.table1_markdown if table == "table1" else paper.table9_markdown
        fitting = []
        for result in results:
            if result["config"].get("dataset") != dataset:
                continue
            try:
                if cells_of([result], base, include_smoke=smoke):
                    fitting.append(result)
            except ValueError:
                pass
        if not fitting:
            continue
        placed += len(fitting)
        if smoke:
            parts.append(f"PIPELINE CHECK, not a result: {len(fitting)} smoke runs\n\n" + markdown(
                fitting, base, include_smoke=True, show_paper=False, label="smoke pipeline check"))
        else:
            parts.append(banners.mode_banner("full", len(fitting), "CIFAR-100" if table == "table1" else "CIFAR-10")
                         + "\n\n" + markdown(fitting, base) + "\n\n" + banners.describe_runs(fitting, "full"))
    parts.append(f"{placed} of {len(results)} results under {runs_dir} placed in the tables of the "
                 f"{preset_name!r} preset{' (smoke)' if smoke else ''}")
    return "\n\n".join(parts)


def table_main(argv) -> int:
    """``python -m dm table1|table9|collect ...`` (see `_table_parser`)."""
    args = _table_parser().parse_args(argv)
    if args.command == "collect":
        print(collect(args.runs_dir, args.preset, args.smoke))
        return 0
    cells = tables.table_configs(args.command, _table_base(args.command, args.preset, args.smoke),
                          args.rows, args.columns)
    share = tables.shard(cells, *args.shard)
    if args.dry_run:
        for config in share.values():
            print(config.name())
        return 0
    dataset = TABLE_DATASETS[args.command]
    options = dict(device=args.device, precision=args.precision, compile=args.compile,
                   progress=not args.no_progress, eval_train=args.command == "table9")
    print(f"{args.command}, shard {args.shard[0]}/{args.shard[1]}: {len(share)} of {len(cells)} runs")
    with tempfile.TemporaryDirectory(prefix="dm-fabricated-") as scratch:  # one per shard: no race
        data = _data(dataset, scratch, args.data_root, args.download, args.smoke)
        cifar.run_all(share, args.runs_dir, data, pack=not args.no_pack, max_pack=args.max_pack, **options)
    return 0


# --- IMDB ----------------------------------------------------------------------------

def _imdb_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m dm imdb",
        description="Train one IMDB (Table 5) run on PV-DBOW features and write its result JSON "
                    "(resuming from a checkpoint if one exists). The features are trained once "
                    "and cached.")
    for field in dataclasses.fields(imdb.Config):
        if field.name == "features":
            continue  # from the data
        flag = "--" + field.name.replace("_", "-")
        parser.add_argument(flag, type=type(field.default), default=field.default)
    _data_arguments(parser)
    parser.add_argument("--fabricated", action="store_true",
                        help="use a tiny fabricated archive in aclImdb's layout (smoke checks)")
    parser.add_argument("--device", default=None, help="cpu (default), cuda, ...")
    parser.add_argument("--no-progress", action="store_true")
    return parser


def _data_arguments(parser: argparse.ArgumentParser) -> None:
    # Where the runs, the archive and the paragraph vectors are (both commands).
    parser.add_argument("--runs-dir", default="runs/imdb", help="where run folders go (default: runs/imdb)")
    parser.add_argument("--data-root", default=None, help="archive cache folder (default: $DM_DATA or ~/.cache/dm)")
    parser.add_argument("--vectors-dir", default=None, help="paragraph-vector cache folder")
    parser.add_argument("--download", action="store_true", help="download the archive if none is there")


def _table5_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m dm table5",
        description="Train every cell of Table 5 (with its class-weighted imbalance cells) once per "
                    "seed, on the PV-DBOW vectors of the real reviews (trained once and cached); "
                    "stored runs load at once, interrupted ones resume.")
    parser.add_argument("--seeds", default=",".join(map(str, tables.TABLE5_SEEDS)),
                        help="comma-separated seeds (default: %(default)s)")
    parser.add_argument("--rows", default=None, help="comma-separated rows, e.g. 'r = 0.4,P-N 50:1'")
    _data_arguments(parser)
    parser.add_argument("--workers", type=int, default=1, help="processes to share the runs out to")
    return parser


def table5_main(argv) -> int:
    """``python -m dm table5 ...`` (see `_table5_parser`). Also
    writes ``<runs_dir>/paragraph_vectors.json``: the vectors' record (data,
    settings, gensim's time per epoch, hardware) and iclr15's check of them
    (`paragraph_vectors.logistic_regression_accuracy`). ``python -m dm
    collect-results RUNS_DIR`` then copies the runs into the book's ``results/``."""
    args = _table5_parser().parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    rows = None if args.rows is None else [r.strip() for r in args.rows.split(",")]
    reviews = imdb_data.load(args.data_root, download=args.download)
    features = paragraph_vectors.paragraph_vectors(reviews, cache_dir=args.vectors_dir)
    record = dict(features.meta, key=features.key, logistic_regression_accuracy=(
        paragraph_vectors.logistic_regression_accuracy(features, reviews)))
    Path(args.runs_dir).mkdir(parents=True, exist_ok=True)
    atomic_write(Path(args.runs_dir) / "paragraph_vectors.json",
                      lambda p: p.write_text(json.dumps(record, indent=1) + "\n"))
    print(f"paragraph vectors {features.key}: logistic regression {record['logistic_regression_accuracy']:.4f}")
    configs = tables.table5_configs(features.key, imdb.PAPER_IMDB, rows, seeds)
    results = imdb.run_all(configs, args.runs_dir, imdb.dataset(reviews, features), report=False,
                      workers=args.workers, progress=False)
    print(f"{len(results)} runs of {len(configs) // len(seeds)} cells x {len(seeds)} seeds on "
          f"{reviews.identity()['description']}")
    return 0


def imdb_main(argv) -> int:
    """``python -m dm imdb ...``: one IMDB run (see `_imdb_parser`)."""
    args = _imdb_parser().parse_args(argv)
    if args.fabricated:
        root = Path(args.runs_dir) / "fabricated-data"
        reviews = imdb_data.load(root, md5=imdb_data.fabricate(root))
        vectors_dir = args.vectors_dir or root / "vectors"
    else:
        reviews = imdb_data.load(args.data_root, download=args.download)
        vectors_dir = args.vectors_dir
    features = paragraph_vectors.paragraph_vectors(reviews, cache_dir=vectors_dir,
                                                   progress=not args.no_progress)
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(imdb.Config) if f.name != "features"}
    config = imdb.Config(**values, features=features.key)
    result = imdb.run(config, args.runs_dir, imdb.dataset(reviews, features), device=args.device,
                      progress=not args.no_progress)
    print(json.dumps({k: result[k] for k in (
        "name", "final_test_accuracy", "final_test_balanced_accuracy", "realised_noise_rate",
        "hardware", "wall_seconds")}, indent=1))
    return 0


def cifar_main(argv) -> int:
    """``python -m dm cifar ...``: one CIFAR run (see `_cifar_parser`)."""
    args = _cifar_parser().parse_args(argv)
    config = config_from_args(args)
    if args.ddp:
        return _ddp_main(args, config)
    data = _data(config.dataset, args.runs_dir, args.data_root, args.download, args.fabricated)
    result = cifar.run(config, args.runs_dir, data, device=args.device, precision=args.precision,
                       compile=args.compile, progress=not args.no_progress)
    _print_summary(result)
    return 0


# --- finished runs into the book ----------------------------------------------------

def collect_results_main(argv) -> int:
    """``python -m dm collect-results RUNS_DIR [--results results]
    [--experiment NAME] [--all]``: `dm.training.runs.collect_results`."""
    parser = argparse.ArgumentParser(
        prog="python -m dm collect-results",
        description="copy every RUNS_DIR/<run>/result.json into RESULTS/<experiment>/<run>/")
    parser.add_argument("runs_dir", help="a notebook's RUNS_DIR, e.g. runs/cifar100_table1 or, "
                                         "from Google Drive, .../MyDrive/dm-runs/cifar100_table1")
    parser.add_argument("--results", default="results", help="the book's results folder (default: results)")
    parser.add_argument("--experiment", default=None,
                        help="the experiment's folder name (default: RUNS_DIR's own name)")
    parser.add_argument("--all", action="store_true", help="copy smoke-mode results too")
    args = parser.parse_args(argv)
    collect_results(args.runs_dir, args.results, args.experiment, full_only=not args.all)
    return 0


def main(argv=None) -> int:
    """``python -m dm COMMAND ...``: one of `COMMANDS`."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        given = repr(argv[0]) if argv else "nothing"
        print(__doc__.strip(), file=sys.stderr)
        if argv and argv[0] in ("-h", "--help"):
            return 0
        print(f"\npython -m dm: the command must be one of {', '.join(COMMANDS)}; got {given}", file=sys.stderr)
        return 2
    command, rest = argv[0], argv[1:]
    if command in ("table1", "table9", "collect"):
        return table_main(argv)
    return {"cifar": cifar_main, "imdb": imdb_main, "table5": table5_main,
            "collect-results": collect_results_main}[command](rest)
