"""Maintenance of the chapter notebooks.

    python scripts/notebooks.py sync-colab            # rewrite every notebook's Colab cell
    python scripts/notebooks.py execute NB [NB ...]   # run notebooks, store their outputs
    python scripts/notebooks.py stored-config PATH    # _config.yml, but render stored outputs

The repository URL lives in `_config.yml` only; `colab_cell_source()` turns it
into the setup cell that opens every notebook, and tests/test_book.py checks
that each notebook's first cell is exactly that.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
# The setup cell runs on Colab; the HTML book hides it ("remove-cell") so each
# page opens with its title.
SETUP_TAGS = ["colab-setup", "remove-cell"]


def repository_url() -> str:
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    return config["repository"]["url"].rstrip("/")


# Notebooks that need one of dm's optional dependencies (pyproject.toml) that
# Colab does not preinstall: name fragment -> extra.
EXTRAS = {"imdb": "imdb"}  # gensim, for the PV-DBOW paragraph vectors


def colab_cell_source(path=None) -> str:
    """The setup cell of the notebook at ``path``: installs `dm` (with the
    extra the notebook needs, if any) from the repository, on Colab only."""
    stem = Path(path).stem if path is not None else ""
    extras = [extra for fragment, extra in EXTRAS.items() if fragment in stem]
    package = f"dm[{','.join(extras)}]" if extras else "dm"
    return (
        "# Setup. On Colab this installs the `dm` package from the book's repository;\n"
        "# elsewhere `make book` / `make test` have installed it already.\n"
        "import sys\n"
        "\n"
        'if "google.colab" in sys.modules:\n'
        f'    %pip install -q "{package} @ git+{repository_url()}"'
    )


def sync_colab(paths) -> None:
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        first = nb.cells[0] if nb.cells else None
        if first is not None and SETUP_TAGS[0] in first.get("metadata", {}).get("tags", []):
            first.source = colab_cell_source(path)
            first.metadata["tags"] = list(SETUP_TAGS)
        else:
            cell = nbformat.v4.new_code_cell(colab_cell_source(path))
            cell.metadata["tags"] = list(SETUP_TAGS)
            nb.cells.insert(0, cell)
        nbformat.write(nb, path)
        print(f"synced {path.relative_to(ROOT)}")


def execute(paths) -> None:
    from nbclient import NotebookClient

    for path in paths:
        path = Path(path).resolve()
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:  # no per-cell timestamps: they make every diff noisy
            cell.metadata.pop("execution", None)
        start = time.perf_counter()
        NotebookClient(nb, timeout=600, kernel_name="python3", record_timing=False,
                       resources={"metadata": {"path": str(path.parent)}}).execute()
        nbformat.write(nb, path)
        print(f"executed {path.relative_to(ROOT)} in {time.perf_counter() - start:.1f} s")


def stored_config(path) -> None:
    """Write a copy of `_config.yml` that renders the notebooks' stored
    outputs instead of executing them. `make test` builds the book with it
    right after nbval has re-executed every notebook and checked that its
    stored outputs are current, so executing them all again would only
    repeat that work; `make book` still executes."""
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    config["execute"]["execute_notebooks"] = "off"
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))


if __name__ == "__main__":
    command, args = sys.argv[1], sys.argv[2:]
    if command == "sync-colab":
        sync_colab([Path(a).resolve() for a in args] or NOTEBOOKS)
    elif command == "execute":
        execute(args or NOTEBOOKS)
    elif command == "stored-config" and len(args) == 1:
        stored_config(args[0])
    else:
        raise SystemExit(__doc__)
