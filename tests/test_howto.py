"""The how-to page (book/howto.md): its code runs against the current `dm`, and
what it quotes from the paper and promises about the API is still true."""

import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

import dm
import dm.report.paper

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "book" / "howto.md"
# A fenced ```python block, also indented (in a list item): (indent, code).
BLOCK = re.compile(r"^([ \t]*)```python\n(.*?)^\1```[ \t]*$", re.S | re.M)


def code_blocks():
    """The page's python code blocks, in order, with their indentation removed."""
    blocks = []
    for indent, body in BLOCK.findall(PAGE.read_text()):
        lines = body.splitlines()
        assert all(not line.strip() or line.startswith(indent) for line in lines), body
        blocks.append("\n".join(line[len(indent):] for line in lines) + "\n")
    return blocks


TORCHRUN = "# train_dm.py: run with  torchrun"


def session_blocks():
    """The blocks a reader runs in one session: all but the torchrun script,
    which `test_the_torchrun_script_trains_under_torchrun` runs as one."""
    return [block for block in code_blocks() if not block.startswith(TORCHRUN)]


def test_the_page_has_its_code_blocks():
    assert len(code_blocks()) >= 5
    assert "```py\n" not in PAGE.read_text()  # every block is tagged python, so none escapes the test


def test_the_code_blocks_run_in_order():
    """Like a reader pasting them one after another into one session: the
    blocks share one namespace, and their assertions are the page's claims."""
    namespace = {"__name__": "howto"}
    for number, code in enumerate(session_blocks(), 1):
        exec(compile(code, f"{PAGE.name}, code block {number}", "exec"), namespace)


def test_the_three_lines_use_dmloss_as_documented():
    first = code_blocks()[0]
    assert "dm.DMLoss(lam=0.5, beta=8.0)" in first and ".backward()" in first
    parameters = inspect.signature(dm.DMLoss).parameters
    for name in ("lam", "beta", "eps", "reduction", "check_inputs", "weight"):
        assert name in parameters, name
    assert parameters["eps"].default == 1e-6  # "DMLoss(eps=1e-6)", "keep the default"
    assert parameters["check_inputs"].default is True


def test_the_ddp_section_documents_distributed():
    for loss in (dm.DMLoss, dm.DN):
        parameter = inspect.signature(loss).parameters["distributed"]
        assert parameter.default is False and parameter.kind is parameter.KEYWORD_ONLY, loss
    text = PAGE.read_text()
    assert "does not exist yet" not in text and "is planned" not in text
    assert "### Under DDP: `distributed=True`" in text
    assert "```bash\ntorchrun --nproc_per_node=4 train_dm.py" in text
    assert "The global batch is the\nper-process batch times $N$" in text
    script = [block for block in code_blocks() if block.startswith(TORCHRUN)]
    assert len(script) == 1 and len(session_blocks()) == len(code_blocks()) - 1
    assert "dm.DMLoss(lam=0.5, beta=8.0, distributed=True)" in script[0]
    assert "DistributedDataParallel" in script[0] and "batch_size=128 // world" in script[0]


def test_the_torchrun_script_trains_under_torchrun(tmp_path):
    """The page's script, run as it says, with two CPU processes (gloo)."""
    (script,) = [block for block in code_blocks() if block.startswith(TORCHRUN)]
    (tmp_path / "train_dm.py").write_text(script)
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH")))))
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                          "train_dm.py"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert re.findall(r"^epoch (\d): loss \d+\.\d{4}$", run.stdout, re.M) == ["0", "1"], run.stdout


def test_quoted_table9_settings_are_the_papers():
    """The page's Table 9 rows: the DM setting with the highest best and final
    test accuracy at r = 0.2 and 0.4 (from dm/data/paper_tables.json)."""
    columns = dm.experiments.tables.table("table9")["columns"]
    top = {}
    for rate in (0.2, 0.4):
        rows = [row for row in dm.experiments.tables.table9_rows() if row["rate"] == rate and row["model"].startswith("DM")]
        for measure in ("best", "final"):
            best = max(rows, key=lambda row: row["values"][columns.index(measure)])
            settings = dm.experiments.tables.parse_table9_model(best["model"])
            top[rate, measure] = (settings["lam"], settings["beta"])
    assert top == {(0.2, "best"): (0.5, 12), (0.2, "final"): (0.5, 12),
                   (0.4, "best"): (0.5, 12), (0.4, "final"): (1, 16)}
    text = PAGE.read_text()
    assert "$r = 0.2$ | 0.5 | 12 |" in text and "$r = 0.4$ | 0.5 / 1 | 12 / 16 |" in text


def test_quoted_table5_settings_are_the_books():
    import dm.experiments.imdb

    assert [dm.experiments.tables.TABLE5_DM[f"r = {r}"] for r in ("0.0", "0.2", "0.4")] == [(0.0, 0.9), (0.0, -0.52), (0.0, -0.33)]
    assert dm.experiments.tables.TABLE5_DM["P-N 10:1"] == dm.experiments.tables.TABLE5_DM["P-N 50:1"] == (0.3, 6.5)
    text = PAGE.read_text()
    assert "| 0 | 0.9, −0.52, −0.33 |" in text and "| 0.3 | 6.5 |" in text
