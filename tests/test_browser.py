"""The built book as a reader sees it: every page of the table of contents
opened in headless Chromium.

`make test` runs this last, after building the HTML from the notebooks'
stored outputs with a local MathJax (``scripts/notebooks.py stored-config
--mathjax``); the first pytest pass skips it (``--ignore``). It needs that
built site (``BOOK_HTML``, default ``_build/html``) and Debian's ``chromium``
and ``chromium-driver`` (``make browser-deps``). Without them it fails, it
never skips.

One browser session visits every page, served by a local ``http.server`` on a
free port, and records what each page shows; the tests below check it:

- math is typeset: every ``.math`` element holds an ``mjx-container``, none is
  a TeX error, no TeX source shows as text, and every derivation chapter has
  some;
- every page shows its title (an ``h1`` in the main content);
- no page logs a console error (level SEVERE) other than the known ones below;
- every image in the main content loads (``naturalWidth > 0``);
- every internal link reaches a file of the site, and its ``#fragment`` is an
  id on the target page;
- each notebook page's Colab button opens that notebook in the repository of
  ``_config.yml``;
- screenshots of the introduction and the first derivation chapter are
  written to ``_build/browser/``.
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import struct
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SITE = (ROOT / os.environ.get("BOOK_HTML", "_build/html")).resolve()
ARTEFACTS = ROOT / "_build" / "browser"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WINDOW = (1280, 1000)
# Without the background-networking flags Chromium's own connections (updates,
# sync, field trials) are refused on a closed network and logged.
CHROMIUM_FLAGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    f"--window-size={WINDOW[0]},{WINDOW[1]}",
]
BUILD_COMMANDS = (
    "  python scripts/notebooks.py stored-config _build/stored-outputs-config.yml "
    "--mathjax _build/mathjax/node_modules/mathjax/es5/tex-mml-chtml.js\n"
    "  jupyter-book build . --all -W -n --keep-going --config _build/stored-outputs-config.yml"
)
BUILD_FIRST = "build the book first (`make test` does, then runs this test), that is:\n" + BUILD_COMMANDS


def toc():
    """(page, source file) for the root and every chapter and section of
    _toc.yml, in order."""
    data = yaml.safe_load((ROOT / "_toc.yml").read_text())
    entries = [(data["root"], None)]

    def walk(items, caption):
        for item in items:
            entries.append((item["file"], caption))
            walk(item.get("sections", []), caption)

    for part in data.get("parts", []):
        walk(part["chapters"], part.get("caption"))
    pages = []
    for name, caption in entries:
        name = str(Path(name).with_suffix(""))
        sources = [s for s in (".ipynb", ".md") if (ROOT / name).with_suffix(s).exists()]
        assert sources, f"_toc.yml names {name}, which has no .ipynb or .md"
        pages.append({"name": name, "source": name + sources[0], "caption": caption})
    return pages


PAGES = toc()
DERIVATIONS = [p["name"] for p in PAGES if p["caption"] == "Derivations"]
NOTEBOOK_PAGES = [p["name"] for p in PAGES if p["source"].endswith(".ipynb")]
# The introduction and the first derivation chapter.
SCREENSHOTS = [PAGES[0]["name"], (DERIVATIONS or NOTEBOOK_PAGES)[0]]


def expected_colab_url(source: str) -> str:
    """What the launch button of `source` should open, from _config.yml."""
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    colab = config["launch_buttons"]["colab_url"].rstrip("/")
    repository = config["repository"]
    owner_repo = urllib.parse.urlparse(repository["url"]).path.strip("/").removesuffix(".git")
    branch = repository.get("branch", "master")  # jupyter-book's default
    book = repository.get("path_to_book", "").strip("/")
    return f"{colab}/github/{owner_repo}/blob/{branch}/{book + '/' if book else ''}{source}"


# Console errors that every Jupyter Book 1 site shows (the template book of
# `jupyter-book create` too), each with its cause; any other SEVERE entry fails.
KNOWN_CONSOLE_ERRORS = [
    # Sphinx 7.4 emits an inline script twice when an extension adds it after the
    # builder exists (its copy in the registry has filename '' and the builder's
    # None, so they are not deduplicated): sphinx-thebe's `const THEBE_JS_URL`
    # is then declared twice. The first declaration stands; thebe is off here.
    (r"Uncaught SyntaxError: Identifier 'THEBE_JS_URL' has already been declared",
     "sphinx-thebe's inline script emitted twice (Sphinx 7.4)"),
    # The book sets no favicon, so Chromium asks the server's root for one; on a
    # real host that root is not the book's.
    (r"^{base}favicon\.ico - Failed to load resource: .* 404",
     "no favicon; Chromium asks the host's root"),
]


def known_console_error(message: str, base: str):
    for pattern, reason in KNOWN_CONSOLE_ERRORS:
        if re.search(pattern.replace("{base}", re.escape(base)), message):
            return reason
    return None


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # Chromium drops connections it no longer needs (broken pipes)


# The ids a #fragment can point at, from Sphinx's HTML (quoted attributes).
IDS = re.compile(r"""<[a-zA-Z][^>]*?\s(?:id|name)=["']([^"']+)["']""")


# JavaScript run in each page once it has loaded.
WAIT_FOR_MATH = """
const done = arguments[arguments.length - 1];
if (!document.querySelector('.math')) { done('no math'); return; }
const start = Date.now();
(function wait() {
  const mj = window.MathJax;
  if (mj && mj.startup && mj.startup.promise) {
    mj.startup.promise.then(() => done('ok'), e => done('MathJax failed: ' + e));
  } else if (Date.now() - start > 500) {  // the script is deferred: it has run by now
    done('MathJax did not load (window.MathJax.startup is missing)');
  } else { setTimeout(wait, 50); }
})();
"""
WAIT_FOR_IMAGES = """
const done = arguments[arguments.length - 1];
const images = Array.from(document.querySelectorAll('#main-content img'));
images.forEach(img => { img.loading = 'eager'; });
Promise.all(images.map(img => img.complete ? null : new Promise(ok => {
  img.addEventListener('load', ok); img.addEventListener('error', ok);
}))).then(() => done(images.map(img => [img.getAttribute('src'), img.naturalWidth])));
"""
SURVEY = r"""
const unset = Array.from(document.querySelectorAll('.math'))
  .filter(e => !e.querySelector('mjx-container'));
const title = document.querySelector('#main-content h1');
// Text a reader sees as TeX source: $...$ or \(...\) outside code and math.
const raw = [];
const walker = document.createTreeWalker(document.querySelector('#main-content') || document.body,
                                         NodeFilter.SHOW_TEXT);
for (let node = walker.nextNode(); node; node = walker.nextNode()) {
  if (node.parentElement.closest('pre, code, script, style, .math, mjx-container, .highlight')) continue;
  const m = node.textContent.match(/\$[^$\s][^$]*\$|\\\(|\\\[/);
  if (m) raw.push(m[0].slice(0, 80));
}
return {
  title: title ? title.textContent.replace(/[\u00b6#]/g, '').trim() : null,
  math: document.querySelectorAll('.math').length,
  raw: raw.slice(0, 3),
  unset: unset.length,
  unset_examples: unset.slice(0, 3).map(e => e.textContent.trim().slice(0, 80)),
  containers: document.querySelectorAll('mjx-container').length,
  errors: Array.from(document.querySelectorAll('mjx-merror'))
    .map(e => e.getAttribute('data-mjx-error') || e.textContent).slice(0, 5),
  links: Array.from(document.querySelectorAll('a[href]')).map(a => a.href),
  colab: Array.from(document.querySelectorAll('a[href*="colab.research.google.com"]')).map(a => a.href),
  mathjax: Array.from(document.scripts).map(s => s.src).filter(s => /mathjax/i.test(s)),
};
"""


# The emphasis explorer (notebooks/04a_emphasis_explorer): move the lambda
# slider the way a reader's drag ends (its model's value changes), wait for
# the figure to redraw, and report the curve before and after, with the stored
# curve of the new setting (dm_table holds all of them, 29 betas x 101 points
# per lambda, in the notebook's order).
EXPLORER = "notebooks/04a_emphasis_explorer"
MOVE_THE_SLIDER = """
const done = arguments[arguments.length - 1];
const started = Date.now();
function model(name) { return Bokeh.documents[0].get_model_by_name(name); }
function ready() {
  if (window.Bokeh && Bokeh.documents && Bokeh.documents.length && Bokeh.documents[0].is_idle
      && model("dm_curve")) { move(); }
  else if (Date.now() - started > 15000) { done({error: "the Bokeh document never became idle"}); }
  else { setTimeout(ready, 50); }
}
function move() {
  const lam = model("dm_lambda"), beta = model("dm_beta");
  const before = Array.from(model("dm_curve").data_source.data.h);
  const text_before = model("dm_readout").text;
  lam.value = 2.0;
  const i = Math.round((lam.value - lam.start) / lam.step);
  const j = Math.round((beta.value - beta.start) / beta.step);
  const nb = Math.round((beta.end - beta.start) / beta.step) + 1, n = before.length;
  const stored = Array.from(model("dm_table").data.h.slice((i * nb + j) * n, (i * nb + j + 1) * n));
  (function poll() {
    const after = Array.from(model("dm_curve").data_source.data.h);
    if (after.some((v, k) => v !== before[k]) || Date.now() - started > 15000) {
      done({before: before, after: after, stored: stored, lam: lam.value, beta: beta.value,
            text_before: text_before, text_after: model("dm_readout").text,
            mode: model("dm_mode").location});
    } else { setTimeout(poll, 50); }
  })();
}
ready();
"""


def _driver(user_data_dir):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS + [f"--user-data-dir={user_data_dir}"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    driver.set_page_load_timeout(30)
    driver.set_script_timeout(30)
    return driver


def _load(driver, url):
    """driver.get, then make sure the page is this one and fully loaded:
    under load chromedriver can return while the new document is still
    parsing."""
    from selenium.common.exceptions import WebDriverException

    driver.get(url)
    deadline, state = time.monotonic() + 30, None
    while time.monotonic() < deadline:
        try:
            state = driver.execute_script("return [location.href, document.readyState]")
        except WebDriverException as error:  # the document changed under the script
            state = str(error).splitlines()[0]
        if state == [url, "complete"]:
            return
        time.sleep(0.05)
    raise AssertionError(f"{url} did not finish loading: {state}")


@pytest.fixture(scope="module")
def visit():
    """Open every table-of-contents page once; return what each one showed."""
    missing = [p["name"] for p in PAGES if not (SITE / p["name"]).with_suffix(".html").exists()]
    if missing:
        more = f" and {len(missing) - 1} more pages" if len(missing) > 1 else ""
        pytest.fail(f"no built book at {SITE} ({missing[0]}.html{more} missing): {BUILD_FIRST}",
                    pytrace=False)
    for tool in (CHROMIUM, CHROMEDRIVER):
        if not tool.exists():
            pytest.fail(f"{tool} is missing: `make browser-deps` "
                        "(apt-get install -y chromium chromium-driver)", pytrace=False)
    try:
        import selenium  # noqa: F401
    except ImportError:
        pytest.fail("selenium is not installed: make test installs it (requirements.txt)", pytrace=False)

    start = time.perf_counter()
    server = _Server(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(SITE)))
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    profile = tempfile.mkdtemp(prefix="dm-book-chromium-")
    shutil.rmtree(ARTEFACTS, ignore_errors=True)
    ARTEFACTS.mkdir(parents=True)
    screenshots = dict.fromkeys(SCREENSHOTS)
    results = {}
    driver = _driver(profile)
    try:
        for page in PAGES:
            url = base + page["name"] + ".html"
            _load(driver, url)
            math = driver.execute_async_script(WAIT_FOR_MATH)
            images = driver.execute_async_script(WAIT_FOR_IMAGES)
            survey = driver.execute_script(SURVEY)
            explorer = driver.execute_async_script(MOVE_THE_SLIDER) if page["name"] == EXPLORER else None
            log = driver.get_log("browser")  # everything since the last call: this page
            if page["name"] in screenshots:
                path = ARTEFACTS / (Path(page["name"]).name + ".png")
                driver.save_screenshot(str(path))
                screenshots[page["name"]] = path
            results[page["name"]] = dict(page, url=url, math_status=math, images=images, log=log,
                                         explorer=explorer, **survey)
        results[PAGES[-1]["name"]]["log"] += driver.get_log("browser")  # any late ones
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)

    server.shutdown()
    server.server_close()

    # Every internal link's target: a file of the site (what the server sends).
    targets, fragments, ids = {}, {}, {}
    for result in results.values():
        for href in result["links"]:
            target, _, fragment = href.partition("#")
            if not target.startswith(base):
                continue
            if target not in targets:
                path = (SITE / urllib.parse.unquote(urllib.parse.urlsplit(target).path).lstrip("/"))
                path = path / "index.html" if path.is_dir() else path
                targets[target] = path.is_file() and path.resolve().is_relative_to(SITE)
                if targets[target] and path.suffix == ".html":
                    ids[target] = set(IDS.findall(path.read_text(encoding="utf-8", errors="replace")))
            if fragment:
                fragments.setdefault((target, urllib.parse.unquote(fragment)), result["name"])

    visit = dict(pages=results, base=base, targets=targets, fragments=fragments, ids=ids,
                 screenshots=screenshots, seconds=time.perf_counter() - start)
    _summary(visit)
    return visit


def _summary(visit):
    pages = visit["pages"].values()
    print(f"\nbrowser: {len(visit['pages'])} pages in {visit['seconds']:.1f} s, "
          f"{sum(len(p['images']) for p in pages)} images, "
          f"{sum(p['containers'] for p in pages)} math containers "
          f"({sum(p['math'] for p in pages)} math elements), "
          f"{sum(len(p['links']) for p in pages)} links "
          f"({len(visit['targets'])} internal targets, {len(visit['fragments'])} fragments)")
    known = {}
    for p in pages:
        print(f"  {p['name']}: {p['containers']} math, {len(p['images'])} images, "
              f"{len(p['links'])} links, {len(p['log'])} console messages")
        for entry in p["log"]:
            reason = known_console_error(entry["message"], visit["base"])
            if entry["level"] == "SEVERE" and reason:
                known.setdefault(reason, []).append(p["name"])
            elif entry["level"] in ("SEVERE", "WARNING"):
                print(f"    console {entry['level']}: {entry['message']}")
    for reason, names in known.items():
        print(f"  known console error on {len(names)} page(s), not counted: {reason}")
    for path in visit["screenshots"].values():
        if path is not None:
            print(f"  screenshot: {path.relative_to(ROOT)}")


def test_every_page_shows_its_title(visit):
    untitled = [name for name, page in visit["pages"].items() if not page["title"]]
    assert not untitled, f"pages without a title in their main content: {untitled}"


def test_math_is_typeset(visit):
    assert DERIVATIONS, "_toc.yml has no part captioned 'Derivations'"
    problems = []
    for name, page in visit["pages"].items():
        if page["math"] and page["math_status"] != "ok":
            problems.append(f"{name}: {page['math_status']} (scripts: {page['mathjax']})")
        if page["unset"]:
            problems.append(f"{name}: {page['unset']} of {page['math']} math elements not typeset, "
                            f"e.g. {page['unset_examples']}")
        if page["errors"]:
            problems.append(f"{name}: TeX errors {page['errors']}")
        if page["raw"]:
            problems.append(f"{name}: TeX shown as text, outside math: {page['raw']}")
        if name in DERIVATIONS and not page["containers"]:
            problems.append(f"{name}: a derivation chapter with no typeset math")
    remote = sorted({s for page in visit["pages"].values() for s in page["mathjax"]
                     if not s.startswith(visit["base"])})
    assert not remote, (f"the pages load MathJax from {remote} (_config.yml's CDN, which a "
                        "closed network cannot reach), not from the site; build them with "
                        "a local MathJax:\n" + BUILD_COMMANDS)
    assert not problems, "\n".join(problems)


def test_no_console_errors(visit):
    errors = [f"{name}: {entry['message']}" for name, page in visit["pages"].items()
              for entry in page["log"] if entry["level"] == "SEVERE"
              and not known_console_error(entry["message"], visit["base"])]
    assert not errors, "console errors:\n" + "\n".join(errors)


def test_every_image_loads(visit):
    broken = [f"{name}: {src}" for name, page in visit["pages"].items()
              for src, width in page["images"] if not width]
    assert not broken, "images that did not load:\n" + "\n".join(broken)


def test_internal_links_reach_their_targets(visit):
    def where(target):
        return [name for name, page in visit["pages"].items()
                if any(h.partition("#")[0] == target for h in page["links"])]

    broken = [f"{target} (no such file) linked from {where(target)}"
              for target, found in visit["targets"].items() if not found]
    broken += [f"{target}#{fragment} (no such id) linked from {page}"
               for (target, fragment), page in visit["fragments"].items()
               if target in visit["ids"] and fragment not in visit["ids"][target]]
    assert not broken, "broken internal links:\n" + "\n".join(broken)


def test_colab_button_opens_the_page_notebook_in_the_repository(visit):
    for name, page in visit["pages"].items():
        if page["source"].endswith(".ipynb"):
            assert set(page["colab"]) == {expected_colab_url(page["source"])}, name
        else:
            assert not page["colab"], name


def test_screenshots_are_written(visit):
    for name, path in visit["screenshots"].items():
        assert path is not None and path.exists(), name
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n", path
        width, height = struct.unpack(">II", data[16:24])  # IHDR
        assert width > 0 and height > 0, path
        # A blank window compresses to a few kilobytes; a page with text does not.
        assert len(data) > 20_000, f"{path}: {len(data)} bytes, is the page blank?"


def test_the_explorer_slider_moves_the_curve(visit):
    """Moving the lambda slider redraws DM's curve, as the stored curve of
    the new setting, and moves the emphasis mode to lambda / (lambda + 1)."""
    assert EXPLORER in visit["pages"], f"{EXPLORER} is not in _toc.yml"
    moved = visit["pages"][EXPLORER]["explorer"]
    assert moved and "error" not in moved, moved
    assert moved["after"] != moved["before"], "the curve did not change when the slider moved"
    assert moved["after"] == pytest.approx(moved["stored"], rel=1e-6)
    assert moved["lam"] == 2.0 and moved["mode"] == pytest.approx(2 / 3, rel=1e-3)
    assert moved["text_after"] != moved["text_before"]
