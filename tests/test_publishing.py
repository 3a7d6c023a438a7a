"""Publishing: the GitHub Actions workflow that builds and deploys the book,
the check that keeps the placeholder repository off GitHub Pages, and the
distribution's name in every install instruction. Fast, no network: the
workflow is read, not run; the check runs on temporary copies."""

import ast
import importlib.util
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("publishing_notebook_tools", ROOT / "scripts" / "notebooks.py")
tools = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tools)

WORKFLOW = ROOT / ".github" / "workflows" / tools.WORKFLOW
PLACEHOLDER = "https://github.com/OWNER/dm-book"
REAL = "https://github.com/example-org/dm-book"


def workflow():
    return yaml.safe_load(WORKFLOW.read_text())


def triggers(flow):
    # YAML 1.1 reads a bare `on` key as the boolean True.
    return flow.get("on", flow.get(True))


def steps(job):
    return workflow()["jobs"][job]["steps"]


def step_using(job, action):
    found = [s for s in steps(job) if s.get("uses", "").split("@")[0] == action]
    assert len(found) == 1, f"{job} should use {action} once"
    return found[0]


def runs_on_main_only(condition):
    """Evaluate a job or step `if:` written in github.ref and github.event_name
    for the events that must deploy and those that must not."""
    def evaluate(event, ref):
        python = (condition.replace("${{", "").replace("}}", "")
                  .replace("&&", " and ").replace("||", " or "))
        python = re.sub(r"!(?!=)", " not ", python)
        python = python.replace("github.event_name", repr(event)).replace("github.ref", repr(ref))
        return eval(python, {"__builtins__": {}}, {})
    deploys = [("push", "refs/heads/main"), ("schedule", "refs/heads/main"),
               ("workflow_dispatch", "refs/heads/main")]
    does_not = [("pull_request", "refs/pull/7/merge"), ("push", "refs/heads/feature"),
                ("workflow_dispatch", "refs/heads/feature"), ("pull_request", "refs/heads/main")]
    return (all(evaluate(*case) for case in deploys)
            and not any(evaluate(*case) for case in does_not))


# --- the workflow ---------------------------------------------------------

def test_workflow_parses_and_runs_on_every_push_and_pull_request_and_weekly():
    on = triggers(workflow())
    assert {"push", "pull_request", "schedule"} <= set(on)
    for event in ("push", "pull_request"):  # every branch, not only main
        assert not (on[event] or {}).get("branches"), f"{event} should not be limited to branches"
    (schedule,) = on["schedule"]
    minute, hour, day, month, weekday = schedule["cron"].split()
    assert (day, month) == ("*", "*") and re.fullmatch(r"[0-6]", weekday), "expected a weekly cron"


def test_build_job_sets_up_python_311_with_pip_caching():
    setup = step_using("build", "actions/setup-python")
    assert str(setup["with"]["python-version"]) == "3.11"
    assert setup["with"]["cache"] == "pip"
    assert "requirements.txt" in setup["with"]["cache-dependency-path"]


def test_build_step_is_make_book_whose_command_has_warnings_as_errors():
    (build,) = [s for s in steps("build") if "make book" in s.get("run", "")
                or "jupyter-book build" in s.get("run", "")]
    if "jupyter-book build" in build["run"]:
        command = build["run"]
    else:  # make book: its recipe runs $(BUILD)
        makefile = (ROOT / "Makefile").read_text()
        command = re.search(r"^BUILD\s*:=\s*(.+)$", makefile, re.M)[1]
        recipe = re.search(r"^book:.*\n((?:\t.*\n)+)", makefile, re.M)[1]
        assert "$(BUILD)" in recipe
    assert "jupyter-book build . --all" in command
    for flag in ("-W", "-n", "--keep-going"):
        assert flag in command.split(), flag


def test_build_job_prints_the_reports_on_failure():
    printing = [s for s in steps("build") if "failure()" in str(s.get("if", ""))
                and "_build/html/reports/*.log" in s.get("run", "")]
    assert len(printing) == 1
    assert "cat " in printing[0]["run"]


def test_the_built_site_is_uploaded_for_pages_from_main_only():
    upload = step_using("build", "actions/upload-pages-artifact")
    assert upload["with"]["path"].rstrip("/") == "_build/html"
    assert runs_on_main_only(upload["if"])


def test_deploy_job_runs_on_main_only_with_what_pages_needs():
    deploy = workflow()["jobs"]["deploy"]
    assert deploy["needs"] == "build" or deploy["needs"] == ["build"]
    assert runs_on_main_only(deploy["if"])
    assert deploy["permissions"]["pages"] == "write"
    assert deploy["permissions"]["id-token"] == "write"
    assert deploy["environment"]["name"] == "github-pages"
    assert deploy["concurrency"]["group"] and deploy["concurrency"]["cancel-in-progress"] is False
    assert step_using("deploy", "actions/deploy-pages")["id"] == "deployment"
    assert "steps.deployment.outputs.page_url" in deploy["environment"]["url"]
    step_using("deploy", "actions/configure-pages")
    # Nothing else in the workflow may write.
    assert workflow()["permissions"] == {"contents": "read"}


def test_deploy_job_checks_the_repository_before_touching_pages():
    names = [s.get("uses", s.get("run", "")) for s in steps("deploy")]
    (check,) = [i for i, n in enumerate(names) if "scripts/notebooks.py check-publishable" in n]
    assert "--repository" in names[check]
    pages = [i for i, n in enumerate(names) if n.startswith(("actions/configure-pages", "actions/deploy-pages"))]
    assert pages and check < min(pages)
    # The check's job installs what scripts/notebooks.py imports at its top.
    tree = ast.parse((ROOT / "scripts" / "notebooks.py").read_text())
    imported = {alias.name.split(".")[0] for node in tree.body if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in tree.body
                 if isinstance(node, ast.ImportFrom) and node.module and node.level == 0}
    third_party = imported - set(sys.stdlib_module_names) - {"__future__"}
    pip_name = {"yaml": "pyyaml"}
    installs = " ".join(n for n in names[:check] if "pip install" in n)
    for module in third_party:
        assert pip_name.get(module, module) in installs.split(), module


# --- the publishable check ------------------------------------------------

def publishable_copy(tmp_path, url, synced_with=None):
    """A _config.yml copy naming ``url``, two notebooks and a README whose
    repository parts were written from ``synced_with`` (default: ``url``)."""
    text = (ROOT / "_config.yml").read_text()
    current = yaml.safe_load(text)["repository"]["url"]
    config = tmp_path / "_config.yml"
    config.write_text(text.replace(current, url))
    assert tools.repository_url(config) == url
    written = tmp_path / "written_from.yml"
    written.write_text(text.replace(current, synced_with or url))
    notebooks = []
    for name in ("01_chapter.ipynb", "10_imdb_chapter.ipynb"):
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# A chapter")])
        nbformat.write(nb, tmp_path / name)
        notebooks.append(tmp_path / name)
    tools.sync_colab(notebooks, config=written)
    readme = tmp_path / "README.md"
    readme.write_text(f"# Title\n\n{tools.README_BEGIN}\n{tools.README_END}\n\nText.\n")
    tools.sync_readme(readme, config=written)
    return dict(config=config, notebooks=notebooks, readme=readme)


def test_check_fails_for_the_placeholder_owner_saying_what_to_change(tmp_path):
    copy = publishable_copy(tmp_path, PLACEHOLDER)
    (problem,) = tools.publishing_problems(**copy)
    assert "repository.url in _config.yml" in problem and "'OWNER'" in problem and "placeholder" in problem
    with pytest.raises(SystemExit) as failed:
        tools.check_publishable(**copy, repository="example-org/dm-book")
    message = str(failed.value)
    assert "set repository.url in _config.yml to https://github.com/example-org/dm-book" in message
    assert "make sync-colab" in message and "commit" in message
    assert "GitHub Actions" in message  # the Pages source, set once


def test_check_passes_for_a_real_looking_url(tmp_path, capsys):
    copy = publishable_copy(tmp_path, REAL)
    assert tools.publishing_problems(**copy) == []
    tools.check_publishable(**copy, repository="Example-Org/dm-book")  # owners are case-blind
    assert "https://example-org.github.io/dm-book/" in capsys.readouterr().out


def test_check_fails_when_published_from_another_repository(tmp_path):
    copy = publishable_copy(tmp_path, REAL)
    (problem,) = tools.publishing_problems(**copy, repository="a-fork/dm-book")
    assert "https://github.com/a-fork/dm-book" in problem


def test_check_fails_until_the_notebooks_and_readme_are_synced(tmp_path):
    copy = publishable_copy(tmp_path, REAL, synced_with=PLACEHOLDER)
    problems = tools.publishing_problems(**copy)
    assert len(problems) == 3
    assert all(str(tmp_path) in p for p in problems)
    with pytest.raises(SystemExit, match="make sync-colab"):
        tools.check_publishable(**copy)


@pytest.mark.parametrize("url", ["https://gitlab.com/example-org/dm-book",
                                 "https://github.com/example-org/dm-book.git",
                                 "https://github.com/example-org"])
def test_check_fails_for_a_url_that_is_not_a_github_repository(tmp_path, url):
    copy = publishable_copy(tmp_path, REAL)
    copy["config"].write_text(copy["config"].read_text().replace(REAL, url))
    assert any("not a GitHub repository's URL" in p for p in tools.publishing_problems(**copy))


@pytest.mark.parametrize("url, publishable", [(PLACEHOLDER, False), (REAL, True)])
def test_check_publishable_command_line_as_the_workflow_runs_it(tmp_path, url, publishable):
    """The workflow's own command, on a copy of the repository's layout."""
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "notebooks.py").write_text((ROOT / "scripts" / "notebooks.py").read_text())
    (tmp_path / "notebooks").mkdir()
    copy = publishable_copy(tmp_path / "notebooks", url)
    copy["config"].rename(tmp_path / "_config.yml")
    copy["readme"].rename(tmp_path / "README.md")
    done = subprocess.run([sys.executable, "scripts/notebooks.py", "check-publishable",
                           "--repository", "example-org/dm-book"],
                          cwd=tmp_path, capture_output=True, text=True,
                          env={**os.environ, "GITHUB_ACTIONS": "true"})
    assert (done.returncode == 0) == publishable, done.stderr
    if not publishable:
        assert "placeholder" in done.stderr and "make sync-colab" in done.stderr
        assert "::error title=Not publishable yet::" in done.stdout


def test_pages_address_of_a_project_and_of_a_user_site():
    assert tools.pages_url("https://github.com/Example-Org/dm-book") == "https://example-org.github.io/dm-book/"
    assert tools.pages_url("https://github.com/someone/someone.github.io") == "https://someone.github.io/"


# --- the distribution's name ----------------------------------------------

def test_distribution_is_derivative_manipulation_imported_as_dm_with_its_data():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["name"] == tools.DISTRIBUTION == "derivative-manipulation"
    setuptools = project["tool"]["setuptools"]
    assert setuptools["packages"] == ["dm"]
    patterns = setuptools["package-data"]["dm"]
    assert any(list((ROOT / "dm").glob(pattern)) for pattern in patterns)
    assert "data/*.json" in patterns


@pytest.mark.parametrize("stem, requirement", [("01_softmax", "derivative-manipulation"),
                                               ("10_imdb_table5", "derivative-manipulation[imdb]")])
def test_colab_cell_installs_the_distribution_by_name_and_never_torch(stem, requirement):
    source = tools.colab_cell_source(ROOT / "notebooks" / f"{stem}.ipynb", REAL)
    assert f'"-m", "pip", "install", "-q", "{requirement} @ git+{REAL}"], check=True)' in source
    assert "torch" not in source
    placeholder = tools.colab_cell_source(ROOT / "notebooks" / f"{stem}.ipynb", PLACEHOLDER)
    assert "torch" not in placeholder and "git+" not in placeholder
    assert f"-e '/content/dm-book{requirement[len('derivative-manipulation'):]}'" in placeholder


class FakeColab:
    """Runs a setup cell's source as Colab would: `google.colab` imported,
    pip's subprocess recorded instead of run, and the distribution installed
    or not (``installed``)."""

    def __init__(self, monkeypatch, installed=False, pip_fails=False):
        import importlib.metadata
        import types

        self.pip_calls = []
        monkeypatch.setitem(sys.modules, "google", types.ModuleType("google"))
        monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))

        def version(name):
            if name == tools.DISTRIBUTION and installed:
                return "0.1.0"
            raise importlib.metadata.PackageNotFoundError(name)

        def run(args, check=False, **kwargs):
            self.pip_calls.append(args)
            if pip_fails and check:
                raise subprocess.CalledProcessError(1, args)
            return subprocess.CompletedProcess(args, 1 if pip_fails else 0)

        monkeypatch.setattr(importlib.metadata, "version", version)
        monkeypatch.setattr(subprocess, "run", run)

    def run_cell(self, source):
        exec(compile(source, "<setup cell>", "exec"), {"__name__": "__main__"})


@pytest.mark.parametrize("stem", ["08_cifar100_table1", "10_imdb_table5"])
def test_placeholder_setup_cell_stops_on_colab_saying_what_to_set(monkeypatch, stem):
    colab = FakeColab(monkeypatch)
    source = tools.colab_cell_source(ROOT / "notebooks" / f"{stem}.ipynb", PLACEHOLDER)
    with pytest.raises(RuntimeError) as raised:
        colab.run_cell(source)
    message = str(raised.value)
    for needed in ("repository.url", "_config.yml", "make sync-colab", PLACEHOLDER, "%pip install -e"):
        assert needed in message, needed
    assert colab.pip_calls == []


def test_placeholder_setup_cell_passes_once_installed_from_a_clone(monkeypatch):
    colab = FakeColab(monkeypatch, installed=True)
    colab.run_cell(tools.colab_cell_source(ROOT / "notebooks" / "08_cifar100_table1.ipynb", PLACEHOLDER))
    assert colab.pip_calls == []


def test_setup_cell_with_a_real_url_runs_pip_and_stops_when_it_fails(monkeypatch):
    source = tools.colab_cell_source(ROOT / "notebooks" / "10_imdb_table5.ipynb", REAL)
    colab = FakeColab(monkeypatch)
    colab.run_cell(source)
    assert colab.pip_calls == [[sys.executable, "-m", "pip", "install", "-q",
                                f"derivative-manipulation[imdb] @ git+{REAL}"]]
    failing = FakeColab(monkeypatch, pip_fails=True)
    with pytest.raises(subprocess.CalledProcessError):  # stops Run all here, not cells later
        failing.run_cell(source)


def test_setup_cell_does_nothing_off_colab(monkeypatch):
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: calls.append(a))
    for url in (PLACEHOLDER, REAL):
        exec(tools.colab_cell_source(ROOT / "notebooks" / "08_cifar100_table1.ipynb", url), {})
    assert calls == []


def test_the_notebooks_setup_cells_are_the_placeholder_cell_while_the_url_is_the_placeholder():
    for path in tools.NOTEBOOKS:
        first = nbformat.read(path, as_version=4).cells[0]
        assert first.source == tools.colab_cell_source(path)
        assert ("raise RuntimeError" in first.source) == tools.is_placeholder(tools.repository_url())


def install_instructions():
    """Every `pip install` outside the notebooks and build outputs."""
    skip = {".venv", "_build", ".git", "notebooks", "node_modules", "__pycache__"}
    for folder, folders, files in os.walk(ROOT):
        folders[:] = sorted(f for f in folders if f not in skip and not f.endswith(".egg-info"))
        for name in sorted(files):
            path = Path(folder) / name
            if path.suffix in {".md", ".py", ".yml", ".yaml", ".toml", ".txt", ".cfg"} and path != Path(__file__):
                for match in re.finditer(r"pip install(?:\s+-\S+)*\s+[\"'`]?([^\"'`\s]+)", path.read_text()):
                    yield path.relative_to(ROOT), match[1]


def test_every_install_instruction_names_the_distribution_or_a_clone():
    found = list(install_instructions())
    assert any(what.startswith("derivative-manipulation") for _, what in found)
    for path, what in found:
        if path == Path(".github/workflows/book.yml"):  # the check's own tools
            assert what in {"pyyaml", "nbformat"}, what
            continue
        if path == Path("scripts/notebooks.py"):  # the Colab cell's template, tested above
            assert what in {"{pip_requirement(url)}", "{clone}"}, what
            continue
        assert what.startswith(("derivative-manipulation", ".")), f"{path}: pip install {what}"
        assert not re.fullmatch(r"dm(\[.*\])?(@.*)?", what), f"{path} installs PyPI's dm"


def test_readme_links_and_install_line_come_from_the_repository_url():
    readme = (ROOT / "README.md").read_text()
    config = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]
    block = tools.readme_links(tools.repository_url(), config["branch"])
    assert block in readme, "run `make sync-colab`"
    assert f"/actions/workflows/{WORKFLOW.name}/badge.svg" in block and WORKFLOW.exists()
    assert tools.pages_url(tools.repository_url()) in block
    assert f'pip install "derivative-manipulation @ git+{tools.repository_url()}"' in block


def test_readme_says_how_to_publish():
    readme = (ROOT / "README.md").read_text()
    section = " ".join(readme.split("## Publishing", 1)[1].split("\n## ", 1)[0].split())
    for needed in ("`repository.url` in `_config.yml`", "make sync-colab", "Commit",
                   "\"GitHub Actions\"", "Pages"):
        assert needed in section, needed
