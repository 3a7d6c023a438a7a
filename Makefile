# The README's two commands: `make book` and `make test`. Both create the
# virtual environment from requirements.txt on first use (and whenever
# requirements.txt or pyproject.toml change), then install `dm` into it.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
READY  := $(VENV)/.ready
BUILD  := $(VENV)/bin/jupyter-book build . --all -W -n --keep-going
NBVAL  := --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg

.PHONY: book test browser-deps venv execute sync-colab clean

# The kernels' IPython configuration (scripts/ipython_kernel_config.py: it drops
# ipykernel's "running over TCP without encryption" warning, printed once per
# notebook otherwise), where the venv's kernels read it.
KERNEL_CONFIG := $(VENV)/etc/ipython/ipython_kernel_config.py

venv: $(READY) $(KERNEL_CONFIG)

$(KERNEL_CONFIG): scripts/ipython_kernel_config.py $(READY)
	mkdir -p $(dir $@) && cp $< $@

# --clear: an old venv may hold a CPU-only torch that would satisfy the pin.
# PIP_FIND_LINKS=" ": take torch from the registry, not a local CPU wheel
# (see requirements.txt).
$(READY): requirements.txt pyproject.toml
	$(PYTHON) -m venv --clear $(VENV)
	PIP_FIND_LINKS=" " $(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $@

# Build the HTML book (re-executing the derivation chapters) into _build/html.
# Warnings are errors: a chapter that fails to execute fails the build.
book: $(READY) $(KERNEL_CONFIG)
	@$(BUILD) || { cat _build/html/reports/*.log 2>/dev/null; exit 1; }
	@echo "Book: _build/html/index.html"

# The full suite: pytest for dm, nbval over every notebook (a fresh run must
# reproduce the stored outputs), the training chapters again under another
# kernel set, then the book build with warnings as errors, and last the built
# pages opened in headless Chromium (tests/test_browser.py: typeset math,
# console errors, images, internal links, Colab buttons, screenshots in
# _build/browser/); the first pass leaves that test out, it needs the site.
# DM_MODE=smoke: the CIFAR notebooks run a few iterations on fabricated data.
# The build renders the stored outputs nbval has just checked against a fresh
# run, rather than executing every notebook a second time, and loads MathJax
# from a local copy (the published book, `make book`, loads it from a CDN).
# A seeded run's numbers depend on the CPU's vector kernels (AVX-512, AVX2, ...),
# so the chapters and tests that train are run a second time with PyTorch's
# scalar kernels (ATEN_CPU_CAPABILITY=default, on every x86 CPU): a claim that
# another machine's rounding can overturn fails here.
# (Chapter 10's stand-in trains too; it is left out of this second pass to keep
# `make test` near 15 minutes on 2 cores, and was checked so by hand.)
# The first pass runs on two pytest-xdist workers, each taking a whole test
# file or notebook at a time (--dist loadscope: a notebook's cells stay in
# order on one kernel), and the second pass runs alongside it (its output is
# printed after it): much of the suite keeps one core only (sympy, small
# tests, process start-up), so together they keep both cores busy.
# OMP_WAIT_POLICY=PASSIVE: an OpenMP thread that waits sleeps instead of
# spinning. Three pytest processes share the two cores, and spinning threads
# took their cores from the working ones (a training test under contention:
# 66 s with spinning, 30 s without). It changes no result: the same threads
# split the same work; only how they wait differs.
TEST_ENV := DM_MODE=smoke OMP_WAIT_POLICY=PASSIVE
TRAINING := tests/test_training.py tests/test_ddp_training.py notebooks/05_objective.ipynb notebooks/07_digits_reproduction.ipynb notebooks/11_rebuttal.ipynb
STORED_CONFIG := _build/stored-outputs-config.yml
SECOND_PASS_LOG := _build/second-pass.log
MATHJAX := _build/mathjax/node_modules/mathjax/es5/tex-mml-chtml.js
test: $(READY) $(KERNEL_CONFIG) browser-deps
	@mkdir -p _build; \
	ATEN_CPU_CAPABILITY=default $(TEST_ENV) $(PY) -m pytest $(TRAINING) $(NBVAL) -p no:cacheprovider \
	  > $(SECOND_PASS_LOG) 2>&1 & second=$$!; \
	$(TEST_ENV) $(PY) -m pytest tests notebooks $(NBVAL) --ignore=tests/test_browser.py --durations=15 \
	  -n 2 --dist loadscope; \
	first=$$?; wait $$second; again=$$?; \
	echo "--- the training chapters and tests again, ATEN_CPU_CAPABILITY=default (ran alongside):"; \
	cat $(SECOND_PASS_LOG); \
	[ $$first -eq 0 ] && [ $$again -eq 0 ]
	$(PY) scripts/notebooks.py stored-config $(STORED_CONFIG) --mathjax $(MATHJAX)
	@$(BUILD) --config $(STORED_CONFIG) || { cat _build/html/reports/*.log 2>/dev/null; exit 1; }
	BOOK_HTML=_build/html $(PY) -m pytest tests/test_browser.py -s

# What tests/test_browser.py needs besides selenium (in requirements.txt):
# Debian's Chromium and its driver, installed with apt-get (as root, as in CI)
# only when one is missing, and MathJax 3 from npm (into the ignored _build/),
# only when missing; npm itself comes from apt-get where it is missing.
browser-deps: $(MATHJAX)
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
	  apt-get update -q && apt-get install -y -q chromium chromium-driver || \
	  { echo "browser-deps: install chromium and chromium-driver (apt-get, as root)"; exit 1; }; \
	fi

$(MATHJAX):
	@command -v npm >/dev/null || { apt-get update -q && apt-get install -y -q npm; } || \
	  { echo "browser-deps: install npm (apt-get, as root)"; exit 1; }
	npm install --prefix _build/mathjax --no-audit --no-fund mathjax@3

# Re-execute notebooks and store their outputs: make execute NB=notebooks/01_softmax.ipynb
execute: $(READY) $(KERNEL_CONFIG)
	$(PY) scripts/notebooks.py execute $(NB)

# Rewrite every notebook's Colab setup cell from the repository URL in _config.yml.
sync-colab: $(READY)
	$(PY) scripts/notebooks.py sync-colab

clean:
	rm -rf _build
