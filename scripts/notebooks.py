"""Maintenance of the chapter notebooks.

    python scripts/notebooks.py sync-colab            # rewrite every notebook's Colab cell
                                                      # and the README's links
    python scripts/notebooks.py execute NB [NB ...]   # run notebooks, store their outputs
    python scripts/notebooks.py stored-config PATH [--mathjax JS]
                                                      # _config.yml, but render stored outputs
                                                      # (and load MathJax from a local copy)
    python scripts/notebooks.py check-publishable [--repository OWNER/NAME]
                                                      # fail unless the book names its real home

The repository URL lives in `_config.yml` only; `colab_cell_source()` turns it
into the setup cell that opens every notebook and `readme_links()` into the
README's badge, Pages link and install line. tests/test_book.py checks that
each notebook's first cell is exactly that; `check-publishable` (run by the
deploy job of .github/workflows/book.yml) also refuses the placeholder owner.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import time
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "_config.yml"
README = ROOT / "README.md"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
# The setup cell runs on Colab; the HTML book hides it ("remove-cell") so each
# page opens with its title.
SETUP_TAGS = ["colab-setup", "remove-cell"]
# The distribution's name (pyproject.toml). The import name stays `dm`, but
# PyPI's `dm` is another project, so every install instruction names this.
DISTRIBUTION = "derivative-manipulation"
# The owner in _config.yml's repository.url until the book has a public home.
PLACEHOLDER_OWNER = "OWNER"
# The workflow that builds and deploys the book (its badge is in the README).
WORKFLOW = "book.yml"
GITHUB_URL = re.compile(r"https://github\.com/(?P<owner>[A-Za-z0-9][A-Za-z0-9-]*)/(?P<name>[A-Za-z0-9._-]+)")


def _repository(config=CONFIG) -> dict:
    """_config.yml's `repository` section ({} where there is none)."""
    return (yaml.safe_load(Path(config).read_text()) or {}).get("repository") or {}


def repository_url(config=CONFIG) -> str:
    return _repository(config)["url"].rstrip("/")


def pages_url(url: str) -> str:
    """Where GitHub Pages serves the book built in the repository at ``url``."""
    match = GITHUB_URL.fullmatch(url)
    if match is None:
        raise ValueError(f"not a GitHub repository URL: {url}")
    owner, name = match["owner"].lower(), match["name"]
    if name.lower() == f"{owner}.github.io":  # a user or organisation site
        return f"https://{owner}.github.io/"
    return f"https://{owner}.github.io/{name}/"


# Notebooks that need one of dm's optional dependencies (pyproject.toml) that
# Colab does not preinstall: name fragment -> extra.
EXTRAS = {"imdb": "imdb"}  # gensim, for the PV-DBOW paragraph vectors


def pip_requirement(url: str, extras=()) -> str:
    """The pip requirement that installs `dm` from the repository at ``url``,
    by its distribution name. Only `dm` itself: its dependencies are loose
    enough that Colab's preinstalled torch satisfies them, so torch is never
    re-pinned or re-downloaded."""
    package = f"{DISTRIBUTION}[{','.join(extras)}]" if extras else DISTRIBUTION
    return f"{package} @ git+{url}"


# Where the placeholder cell's message suggests putting a clone on Colab.
CLONE = "/content/dm-book"


def is_placeholder(url: str) -> bool:
    """Whether ``url`` names the placeholder owner (no public repository yet)."""
    match = GITHUB_URL.fullmatch(url.rstrip("/"))
    return match is not None and match["owner"].upper() == PLACEHOLDER_OWNER


def colab_cell_source(path=None, url=None) -> str:
    """The setup cell of the notebook at ``path``: installs `dm` (with the
    extra the notebook needs, if any) from the repository, on Colab only.
    ``url``: the repository; by default the one in `_config.yml`.

    pip runs as a subprocess with ``check=True``, so a failed install stops
    "Run all" at this cell (a failing ``%pip`` does not; the first error
    would be a ModuleNotFoundError cells later). While ``url`` is the
    placeholder, the cell installs nothing: it stops with an error saying
    what to set, unless the distribution is installed already (from a clone)."""
    stem = Path(path).stem if path is not None else ""
    extras = [extra for fragment, extra in EXTRAS.items() if fragment in stem]
    url = repository_url() if url is None else url
    requirement = pip_requirement(url, extras)
    head = (
        f"# Setup. On Colab this installs the `dm` package ({DISTRIBUTION}) from the\n"
        "# book's repository; elsewhere `make book` / `make test` have installed it already.\n"
        "import sys\n"
        "\n"
        'if "google.colab" in sys.modules:\n'
    )
    if is_placeholder(url):
        clone = CLONE + (f"[{','.join(extras)}]" if extras else "")
        return head + (
            "    from importlib import metadata\n"
            "\n"
            "    try:  # installed from a clone in this session: nothing to do\n"
            f'        metadata.version("{DISTRIBUTION}")\n'
            "    except metadata.PackageNotFoundError:\n"
            "        raise RuntimeError(\n"
            f'            "This copy of the book names no repository to install dm from: {url} "\n'
            "            \"is the placeholder in repository.url in _config.yml. Either set repository.url \"\n"
            "            \"to the book's GitHub URL and run `make sync-colab` (it rewrites this cell in \"\n"
            "            \"every notebook), then open the notebook from that repository; or install from \"\n"
            f'            "a clone in a cell above this one: upload or clone the repository to {CLONE} "\n'
            f"            \"and run `%pip install -e '{clone}'`, then run all again.\") from None"
        )
    return head + (
        "    import subprocess\n"
        "\n"
        "    # check=True: a failed install stops Run all here.\n"
        f'    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "{requirement}"], check=True)'
    )


README_BEGIN = "<!-- links: written by `make sync-colab` from repository.url in _config.yml -->"
README_END = "<!-- /links -->"


def readme_links(url: str, branch: str = "main") -> str:
    """The README's block that names the repository: the workflow's badge, the
    book's Pages address and the install line."""
    workflow = f"{url}/actions/workflows/{WORKFLOW}"
    return "\n".join([
        README_BEGIN,
        f"[![book]({workflow}/badge.svg?branch={branch})]({workflow})",
        "",
        f"The book: <{pages_url(url)}>. The package, without cloning:",
        "",
        "```",
        f'pip install "{pip_requirement(url)}"',
        "```",
        README_END,
    ])


def _readme_block(text: str):
    """(start, end) of the links block in the README's ``text``, or None."""
    start, end = text.find(README_BEGIN), text.find(README_END)
    if start < 0 or end < start:
        return None
    return start, end + len(README_END)


def _shown(path) -> str:
    path = Path(path).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def sync_colab(paths, config=CONFIG) -> None:
    url = repository_url(config)
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        first = nb.cells[0] if nb.cells else None
        if first is not None and SETUP_TAGS[0] in first.get("metadata", {}).get("tags", []):
            first.source = colab_cell_source(path, url)
            first.metadata["tags"] = list(SETUP_TAGS)
        else:
            cell = nbformat.v4.new_code_cell(colab_cell_source(path, url))
            cell.metadata["tags"] = list(SETUP_TAGS)
            nb.cells.insert(0, cell)
        nbformat.write(nb, path)
        print(f"synced {_shown(path)}")


def sync_readme(readme=README, config=CONFIG) -> None:
    """Rewrite the README's links block from the repository URL."""
    readme = Path(readme)
    text = readme.read_text()
    span = _readme_block(text)
    if span is None:
        raise SystemExit(f"{_shown(readme)}: no block between {README_BEGIN!r} and {README_END!r}")
    repository = _repository(config)
    block = readme_links(repository["url"].rstrip("/"), repository.get("branch", "main"))
    readme.write_text(text[:span[0]] + block + text[span[1]:])
    print(f"synced {_shown(readme)}")


def publishing_problems(config=CONFIG, notebooks=None, readme=README, repository=None) -> list:
    """What stops the book from being published; empty when nothing does.

    The repository URL in ``config`` must be a GitHub repository's URL whose
    owner is not the placeholder (and, given ``repository`` as OWNER/NAME, the
    deploying repository's own), and every place built from it must have been
    rewritten from it: each notebook's Colab cell and the README's links."""
    notebooks = NOTEBOOKS if notebooks is None else notebooks
    settings = _repository(config)
    url = str(settings.get("url", "")).rstrip("/")
    match = GITHUB_URL.fullmatch(url)
    problems = []
    if match is None or match["name"].endswith(".git"):
        problems.append(f"repository.url in _config.yml is {url!r}, not a GitHub repository's URL "
                        "(https://github.com/OWNER/NAME).")
    elif match["owner"].upper() == PLACEHOLDER_OWNER:
        problems.append(f"repository.url in _config.yml is {url}, whose owner {match['owner']!r} is "
                        "the placeholder: the Colab buttons and every notebook's setup cell would "
                        "point at a repository that does not exist.")
    elif repository is not None and f"{match['owner']}/{match['name']}".lower() != repository.lower():
        problems.append(f"repository.url in _config.yml is {url}, but the book is being published "
                        f"from https://github.com/{repository}.")
    for path in notebooks:
        cells = nbformat.read(path, as_version=4).cells
        if not cells or cells[0].source != colab_cell_source(path, url):
            problems.append(f"{_shown(path)}: its Colab setup cell was not written from "
                            f"repository.url ({url}).")
    if readme is not None:
        text = Path(readme).read_text()
        span = _readme_block(text)
        expected = readme_links(url, settings.get("branch", "main")) if match else None
        if span is None or text[span[0]:span[1]] != expected:
            problems.append(f"{_shown(readme)}: its badge, Pages link and install line were not "
                            f"written from repository.url ({url}).")
    return problems


def publishing_instructions(repository=None) -> str:
    """What a publisher does, naming the repository where it is known."""
    url = f"https://github.com/{repository}" if repository else "https://github.com/<owner>/<name>"
    return (
        "To publish the book:\n"
        f"  1. set repository.url in _config.yml to {url}, the repository's own URL;\n"
        "  2. run `make sync-colab`, which rewrites every notebook's Colab setup cell and the\n"
        "     README's links from it;\n"
        "  3. commit _config.yml, notebooks/*.ipynb and README.md and push to main;\n"
        "  4. once: Settings > Pages > Build and deployment > Source: GitHub Actions."
    )


def _annotation(text: str) -> str:
    """``text`` as the message of a GitHub Actions workflow command."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def check_publishable(config=CONFIG, notebooks=None, readme=README, repository=None) -> None:
    """Raise SystemExit with what to change unless the book can be published."""
    problems = publishing_problems(config, notebooks, readme, repository)
    if problems and os.environ.get("GITHUB_ACTIONS") == "true":
        # Also as annotations, shown on the workflow run's summary page.
        for problem in problems:
            print(f"::error title=Not publishable yet::{_annotation(problem)}")
        print(f"::notice title=How to publish::{_annotation(publishing_instructions(repository))}")
    if problems:
        raise SystemExit("Not publishable yet:\n"
                         + "".join(f"  - {problem}\n" for problem in problems)
                         + publishing_instructions(repository))
    print(f"publishable: {repository_url(config)} -> {pages_url(repository_url(config))}")


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


def stored_config(path, mathjax=None) -> None:
    """Write a copy of `_config.yml` that renders the notebooks' stored
    outputs instead of executing them. `make test` builds the book with it
    right after nbval has re-executed every notebook and checked that its
    stored outputs are current, so executing them all again would only
    repeat that work; `make book` still executes.

    ``mathjax``: a local MathJax 3 ``es5/tex-mml-chtml.js`` (the npm package
    ``mathjax@3``). Its ``es5`` folder (the fonts and the extensions it loads
    on demand sit beside it) is copied next to the config and served from the
    site's ``_static/mathjax/``, so tests/test_browser.py can check typeset
    math without the CDN that `_config.yml` (the published book) loads it
    from."""
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    config["execute"]["execute_notebooks"] = "off"
    # jupyter-book resolves local extensions' folders from the config file's
    # own folder, which is no longer the book's root.
    extensions = config.get("sphinx", {}).get("local_extensions") or {}
    for name, folder in extensions.items():
        extensions[name] = str((ROOT / folder).resolve())
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if mathjax is not None:
        script = Path(mathjax).resolve()
        if not script.is_file():
            raise SystemExit(f"--mathjax: no such file {script} (`make browser-deps` installs it)")
        static = path.parent / "mathjax-static"
        shutil.rmtree(static, ignore_errors=True)
        shutil.copytree(script.parent, static / "mathjax")
        sphinx = config.setdefault("sphinx", {}).setdefault("config", {})
        sphinx["html_static_path"] = [str(static.resolve())]
        sphinx["mathjax_path"] = f"mathjax/{script.name}"  # relative to _static/
    path.write_text(yaml.safe_dump(config, sort_keys=False))


if __name__ == "__main__":
    command, args = (sys.argv[1], sys.argv[2:]) if len(sys.argv) > 1 else ("", [])
    if command == "sync-colab":
        sync_colab([Path(a).resolve() for a in args] or NOTEBOOKS)
        sync_readme()
    elif command == "check-publishable" and (not args or (len(args) == 2 and args[0] == "--repository")):
        check_publishable(repository=args[1] if args else None)
    elif command == "execute":
        execute(args or NOTEBOOKS)
    elif command == "stored-config" and len(args) == 1:
        stored_config(args[0])
    elif command == "stored-config" and len(args) == 3 and args[1] == "--mathjax":
        stored_config(args[0], mathjax=args[2])
    else:
        raise SystemExit(__doc__)
