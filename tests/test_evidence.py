"""One evidence rule, defined once (book/evidence.md) and used everywhere.

The checks are driven by what the notebooks contain, not by a list of them: a
notebook whose code uses a `dm.stats.Estimate`'s ``t`` must link to the rule in
its prose, at or before the first place it discusses one, and no assertion in a
notebook or a test may claim an absence (``abs(e.t) < 2``, ``e.t < 2``): a small
``|t|`` means the seeds do not resolve a difference, not that there is none.
"""

import ast
import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
LABEL = "(evidence-rule)="
# A MyST reference to the label: {ref}`evidence-rule`, {ref}`text <evidence-rule>` or [text](evidence-rule).
LINK = re.compile(r"\{ref\}`(?:[^`<]*<)?evidence-rule>?`|\]\(#?evidence-rule\)")
# Notebooks not yet held to the link check, each with its reason. The check still
# runs on them, as a strict xfail: once one passes, the xfail fails, and its entry
# must be dropped here.
NOT_YET: dict = {}


def code_without_magics(source: str) -> str:
    """A code cell's source with IPython's ``%`` and ``!`` lines made ``pass``, so ast can parse it."""
    return "\n".join(line[:len(line) - len(line.lstrip())] + "pass" if line.lstrip().startswith(("%", "!")) else line
                     for line in source.splitlines())


def uses_t(source: str) -> bool:
    """Whether code reads an Estimate's ``t`` (``e.t``, not a transpose ``x.t()``)."""
    try:
        tree = ast.parse(code_without_magics(source))
    except SyntaxError:
        return bool(re.search(r"\.t\b(?!\s*\()", source))
    calls = {id(node.func) for node in ast.walk(tree) if isinstance(node, ast.Call)}
    return any(isinstance(node, ast.Attribute) and node.attr == "t" and id(node) not in calls
               for node in ast.walk(tree))


def _mentions_t(node) -> bool:
    return any(isinstance(n, ast.Attribute) and n.attr == "t" for n in ast.walk(node))


def _number(node):
    """The value of a numeric literal (``2``, ``-2.0``), else None."""
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _number(node.operand)
        return None if value is None else (-value if isinstance(node.op, ast.USub) else value)
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return node.value
    return None


def _is_abs(node) -> bool:
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "abs"


def absence_claims(source: str) -> list[str]:
    """The comparisons in ``source``'s assert statements that bound a ``t`` towards zero.

    ``t > c`` claims a difference only for c > 0, ``t < c`` only for c < 0, and
    ``abs(t) > c`` for c > 0; ``abs(t) < c``, ``t < 2``, ``t > -2`` (and the same
    written the other way round) claim that a difference is absent or not negative.
    """
    tree = ast.parse(code_without_magics(source))
    found = []
    for statement in (n for n in ast.walk(tree) if isinstance(n, ast.Assert)):
        for compare in (n for n in ast.walk(statement.test) if isinstance(n, ast.Compare)):
            sides = [compare.left, *compare.comparators]
            for left, op, right in zip(sides, compare.ops, sides[1:]):
                if not isinstance(op, (ast.Lt, ast.LtE, ast.Gt, ast.GtE)):
                    continue
                if _mentions_t(left) and _number(right) is not None:
                    t_side, c, upper = left, _number(right), isinstance(op, (ast.Lt, ast.LtE))
                elif _mentions_t(right) and _number(left) is not None:
                    t_side, c, upper = right, _number(left), isinstance(op, (ast.Gt, ast.GtE))
                else:
                    continue
                if _is_abs(t_side):
                    absent = upper or c <= 0
                else:
                    absent = (upper and c >= 0) or (not upper and c <= 0)
                if absent:
                    found.append(ast.unparse(compare))
    return found


def test_the_rule_is_defined_once_on_its_page():
    page = (ROOT / "book" / "evidence.md").read_text()
    assert page.count(LABEL) == 1 and page.lstrip().startswith(LABEL), "the label goes above the title"
    others = [p for p in [*ROOT.glob("book/**/*.md"), *NOTEBOOKS, *ROOT.glob("*.md")]
              if p.name != "evidence.md" and LABEL in p.read_text()]
    assert others == []
    stats_doc = __import__("dm.stats", fromlist=["stats"]).__doc__
    assert ":ref:`evidence-rule`" in stats_doc


def test_the_checks_tell_presence_from_absence():
    claims = ["assert e.t > 2", "assert e.t < -2", "assert abs(e.t) > 2", "assert 2 < e.t",
              "assert all(d[k].t > 2 for k in d) and x.mean < 0.01"]
    absences = ["assert abs(e.t) < 2", "assert e.t < 2", "assert e.t > -2", "assert -2 < e.t < 2",
                "assert all(abs(x[r].t) <= 1.5 for r in R)", "assert a.t > 2 and abs(b.t) < 2"]
    assert all(absence_claims(s) == [] for s in claims)
    assert all(len(absence_claims(s)) >= 1 for s in absences)
    assert uses_t("print(e.t)") and uses_t("f'{e.t:+.1f}'") and not uses_t("y = x.t() @ x")


def link_problem(path: Path) -> str | None:
    """Why ``path`` breaks the link rule, or None: a notebook whose code uses ``t``
    links to the rule in a Markdown cell before, or right after, its first such cell."""
    cells = nbformat.read(path, as_version=4).cells
    first = next((i for i, c in enumerate(cells) if c.cell_type == "code" and uses_t(c.source)), None)
    if first is None:
        return None
    after = next((i for i in range(first + 1, len(cells)) if cells[i].cell_type == "markdown"), len(cells))
    if not any(c.cell_type == "markdown" and LINK.search(c.source) for c in cells[:after + 1]):
        return f"cell {first} uses t, and no Markdown cell up to cell {after} links to evidence-rule"
    return None


def test_the_link_check_has_notebooks_to_check():
    using = [p.name for p in NOTEBOOKS
             if any(c.cell_type == "code" and uses_t(c.source) for c in nbformat.read(p, as_version=4).cells)]
    assert {"05_objective.ipynb", "07_digits_reproduction.ipynb", "11_rebuttal.ipynb"} <= set(using), using


@pytest.mark.parametrize("path", [pytest.param(p, marks=pytest.mark.xfail(p.name in NOT_YET, strict=True,
                                                                          reason=NOT_YET.get(p.name, "")))
                                  for p in NOTEBOOKS], ids=lambda p: p.name)
def test_notebook_follows_the_rule(path):
    problem = link_problem(path)
    assert problem is None, problem
    cells = nbformat.read(path, as_version=4).cells
    absences = {i: absence_claims(c.source) for i, c in enumerate(cells) if c.cell_type == "code"}
    assert {i: a for i, a in absences.items() if a} == {}


@pytest.mark.parametrize("path", sorted((ROOT / "tests").glob("*.py")), ids=lambda p: p.name)
def test_no_test_asserts_an_absence(path):
    if path.name == Path(__file__).name:
        return  # its own examples above
    assert absence_claims(path.read_text()) == []
