"""The book's own invariants: table of contents, Colab cells, stored outputs."""

import importlib.util
import re
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("notebook_tools", ROOT / "scripts" / "notebooks.py")
notebook_tools = importlib.util.module_from_spec(spec)
spec.loader.exec_module(notebook_tools)

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def toc_files():
    """Every file in the table of contents: the root, each part's chapters and
    their sections (a page that belongs to a chapter is listed under it)."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())

    def entries(items):
        for item in items:
            yield item["file"]
            yield from entries(item.get("sections", []))

    return [toc["root"]] + [f for part in toc.get("parts", []) for f in entries(part["chapters"])]


def test_every_notebook_is_in_the_table_of_contents_and_back():
    listed = {f for f in toc_files() if f.startswith("notebooks/")}
    present = {f"notebooks/{nb.stem}" for nb in NOTEBOOKS}
    assert listed == present
    for f in toc_files():
        assert any((ROOT / f).with_suffix(s).exists() for s in (".md", ".ipynb")), f


def test_repository_url_is_a_github_url():
    assert notebook_tools.repository_url().startswith("https://github.com/")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_opens_with_the_colab_cell_for_the_configured_repository(path):
    first = nbformat.read(path, as_version=4).cells[0]
    assert first.cell_type == "code"
    assert first.source == notebook_tools.colab_cell_source(path), "run `make sync-colab`"
    assert first.metadata.tags == notebook_tools.SETUP_TAGS, "run `make sync-colab`"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stored_executed_with_the_python3_kernel(path):
    nb = nbformat.read(path, as_version=4)
    assert nb.metadata.kernelspec.name == "python3"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code), "run `make execute NB=...`"
    counts = [c.execution_count for c in code]
    assert counts == list(range(1, len(code) + 1)), "executed out of order or partially"
    titles = [line for c in nb.cells if c.cell_type == "markdown"
              for line in c.source.splitlines() if line.startswith("# ")]
    assert len(titles) == 1, titles


EXPERIMENTS = [nb for nb in NOTEBOOKS if "cifar" in nb.stem or "imdb" in nb.stem]


def test_gpu_experiment_notebooks_are_not_executed_at_build_time():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    excluded = config["execute"]["exclude_patterns"]
    assert "*cifar*" in excluded and "*imdb*" in excluded
    assert EXPERIMENTS, "expected the CIFAR notebooks"


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.name)
def test_experiment_notebook_has_one_parameters_cell_and_the_right_runtime(path):
    nb = nbformat.read(path, as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1 and tagged[0].cell_type == "code"
    assert "mode()" in tagged[0].source, "the DM_MODE switch belongs in the parameters cell"
    # CIFAR needs a GPU; the IMDB network (8 hidden units) runs on a CPU runtime.
    assert nb.metadata.get("accelerator") == ("GPU" if "cifar" in path.stem else None)


def test_imdb_notebook_installs_gensim_on_colab():
    (path,) = [nb for nb in NOTEBOOKS if "imdb" in nb.stem]
    real = "https://github.com/example-org/dm-book"
    assert '"derivative-manipulation[imdb] @ git+' in notebook_tools.colab_cell_source(path, real)
    assert '"derivative-manipulation @ git+' in notebook_tools.colab_cell_source(
        ROOT / "notebooks" / "09_cifar10_resnet56.ipynb", real)
    # While the URL is the placeholder the cell installs nothing, and names the extra for a clone.
    assert "[imdb]" in nbformat.read(path, as_version=4).cells[0].source


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.name)
def test_stored_experiment_outputs_say_what_they_are(path):
    """Stored outputs of a smoke run must say so; a full run must name its
    hardware (for CIFAR, a GPU)."""
    nb = nbformat.read(path, as_version=4)
    text = "\n".join(
        output.get("text", "") if "text" in output else str(output.get("data", {}).get("text/plain", ""))
        for cell in nb.cells if cell.cell_type == "code" for output in cell.get("outputs", []))
    if "MODE: smoke" in text:
        assert "not a reproduction" in text.lower()
    else:
        assert "MODE: full" in text and "hardware:" in text
        if "cifar" in path.stem:
            assert "NVIDIA" in text or "GPU" in text


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_title_carries_no_number_of_its_own(path):
    """_toc.yml numbers the chapters (numbered parts); a number written in
    the title as well would show twice ("4. 4. From loss to emphasis")."""
    nb = nbformat.read(path, as_version=4)
    (title,) = [line for c in nb.cells if c.cell_type == "markdown"
                for line in c.source.splitlines() if line.startswith("# ")]
    assert not re.match(r"# *\d+(\.\d+)*\.? ", title), title


def test_bokeh_figures_load_bokehjs_from_the_book_not_a_cdn():
    """A stored Bokeh figure (bokeh.embed.components) calls BokehJS, which
    book/_ext/bokehjs_local.py serves from the built site's _static/: the
    book must work offline, so no stored output may load a script itself."""
    spec = importlib.util.spec_from_file_location("bokehjs_local", ROOT / "book" / "_ext" / "bokehjs_local.py")
    extension = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(extension)
    assert all(source.is_file() for source in extension.bundles().values())
    pages = []
    for path in NOTEBOOKS:
        html = [output["data"]["text/html"] for cell in nbformat.read(path, as_version=4).cells
                if cell.cell_type == "code" for output in cell.get("outputs", [])
                if "text/html" in output.get("data", {})]
        for text in html:
            if extension.MARKER in text:
                pages.append(path.stem)
                assert "<script src" not in text and "cdn.bokeh.org" not in text, path.name
    assert "04a_emphasis_explorer" in pages
