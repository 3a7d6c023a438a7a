"""A table from the command line (python -m dm table1|table9|collect):
shards cover every cell once, and collecting after all shards gives the table."""

import subprocess
import sys

import pytest

from dm import cli
from dm.experiments import cifar as ex
from dm.experiments import tables


@pytest.mark.parametrize("table, cells", [("table1", 84), ("table9", 16)])
def test_every_cell_lands_in_exactly_one_shard(table, cells):
    every = tables.table_configs(table, ex.preset("paper", cli.TABLE_DATASETS[table]))
    assert len(every) == cells and len({c.name() for c in every.values()}) == cells
    for count in (1, 2, 5, 7, 16, cells, cells + 3):
        shards = [tables.shard(every, i, count) for i in range(count)]
        keys = [key for part in shards for key in part]
        assert keys == list(every)  # each cell once, in order
    # Table 1 in 7 shards: one column (one pack of 12) each.
    for i, part in enumerate(tables.shard(tables.table_configs("table1", ex.PAPER_CIFAR100), i, 7) for i in range(7)):
        assert len(part) == 12 and len(ex.packs(part)) == 1
    with pytest.raises(ValueError, match=r"shard index must lie in \[0, 6\], got 7"):
        tables.shard(every, 7, 7)


def test_rows_and_columns_select_cells():
    cells = tables.table_configs("table1", ex.PAPER_CIFAR100, rows=["CCE", "DM (lambda = 0.5)"], columns=["s0.4"])
    assert list(cells) == [("CCE", "s0.4"), ("DM (lambda = 0.5)", "s0.4")]
    assert cells[("DM (lambda = 0.5)", "s0.4")].beta == 8.0
    with pytest.raises(ValueError, match="unknown table1 column 's0.5'"):
        tables.table_configs("table1", ex.PAPER_CIFAR100, columns=["s0.5"])
    nine = tables.table_configs("table9", ex.PAPER_CIFAR10_RESNET56, columns=["0.4"])
    assert len(nine) == 6 and {c.noise_rate for c in nine.values()} == {0.4}


def test_dry_run_prints_each_shards_run_names(capsys):
    cli.main(["table1", "--dry-run"])
    whole = capsys.readouterr().out.splitlines()
    assert whole == [c.name() for c in tables.table_configs("table1", ex.PAPER_CIFAR100).values()]
    parts = []
    for i in range(5):
        cli.main(["table1", "--dry-run", "--shard", f"{i}/5"])
        parts += capsys.readouterr().out.splitlines()
    assert parts == whole
    with pytest.raises(SystemExit):
        cli.main(["table1", "--shard", "5/5", "--dry-run"])
    assert "needs 0 <= I < N, got '5/5'" in capsys.readouterr().err


def test_collect_after_all_shards_gives_the_whole_table(tmp_path, capsys):
    runs_dir = str(tmp_path / "runs")
    for i in range(3):  # three shards of one column, as three machines would run them
        cli.main(["table1", "--smoke", "--columns", "s0.4", "--shard", f"{i}/3", "--runs-dir", runs_dir,
                 "--device", "cpu", "--no-progress"])
    capsys.readouterr()
    cli.main(["collect", "--smoke", "--runs-dir", runs_dir])
    out = capsys.readouterr().out
    assert out.startswith("PIPELINE CHECK, not a result: 12 smoke runs")
    assert out.rstrip().endswith("12 of 12 results under " + runs_dir + " placed in the tables of the 'paper' preset (smoke)")
    rows = [line for line in out.splitlines() if line.startswith("| ") and not line.startswith(("| method", "| :"))]
    assert len(rows) == 12
    for line in rows:
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[3] != "—" and all(c == "—" for c in cells[1:3] + cells[4:]), line  # s0.4 filled alone
    # Without --smoke the smoke runs are not a reproduction: nothing is placed.
    cli.main(["collect", "--runs-dir", runs_dir])
    assert capsys.readouterr().out.strip() == f"0 of 12 results under {runs_dir} placed in the tables of the 'paper' preset"


def test_the_table_command_runs_as_a_module():
    out = subprocess.run([sys.executable, "-m", "dm", "table9", "--dry-run", "--shard", "1/4"],
                         capture_output=True, text=True, check=True).stdout.splitlines()
    assert out == [c.name() for c in tables.shard(tables.table_configs("table9", ex.PAPER_CIFAR10_RESNET56), 1, 4).values()]
