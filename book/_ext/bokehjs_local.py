"""Serve BokehJS from the book itself, on the pages that embed a Bokeh figure.

A notebook that shows a Bokeh figure in the HTML book stores the output of
``bokeh.embed.components``: the figure's JSON document and a script that hands
it to BokehJS, which must already be loaded when that script runs (it calls
``Bokeh.safely`` at once). Bokeh's own notebook output would fetch BokehJS from
a CDN; the book must work offline (its browser test has no network) and
without a Python kernel. So this extension

* copies BokehJS's core and widgets bundles (sliders and text are widgets)
  from the installed ``bokeh`` package into the built site's ``_static/``,
  named with their version as on Bokeh's CDN (``bokeh-3.9.2.min.js``), so they
  always match the Python package that wrote the figure, and
* adds a ``<script>`` for each, once, to the ``<head>`` of exactly the pages
  whose body embeds a Bokeh document; the other pages load nothing.

Enabled in ``_config.yml`` under ``sphinx.local_extensions``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

# What bokeh.embed.components' script calls; only pages that contain it need BokehJS.
MARKER = "Bokeh.embed.embed_items"
BUNDLES = ("bokeh", "bokeh-widgets")


def bundles() -> dict[str, Path]:
    """The BokehJS files to serve: name in ``_static/`` -> file in the bokeh package."""
    import bokeh
    from bokeh.util.paths import bokehjs_path

    js = Path(bokehjs_path()) / "js"
    return {f"{name}-{bokeh.__version__}.min.js": js / f"{name}.min.js" for name in BUNDLES}


def _add_scripts(app, pagename, templatename, context, doctree):
    # Called once per page; add_js_file here adds to this page only (Sphinx >= 3.5).
    if doctree is not None and MARKER in context.get("body", ""):
        for name in bundles():
            app.add_js_file(name)


def _copy_bundles(app, exception):
    if exception is not None or app.builder.format != "html":
        return
    static = Path(app.outdir) / "_static"
    static.mkdir(exist_ok=True)
    for name, source in bundles().items():
        shutil.copyfile(source, static / name)


def setup(app):
    bundles()  # fail at once, not at the end of the build, if bokeh is missing
    app.connect("html-page-context", _add_scripts)
    app.connect("build-finished", _copy_bundles)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
