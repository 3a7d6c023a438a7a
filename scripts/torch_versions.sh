#!/usr/bin/env bash
# The package's torch-only tests under several torch releases, each in a
# venv of its own with only torch, numpy and pytest (no torchvision, sklearn,
# gensim or jupyter): is pyproject.toml's floor (`torch>=...`) true?
#
#   bash scripts/torch_versions.sh [VERSION ...]     # default: the floor and the newest
#   OUT=benchmarks/measured/torch_versions-cpu.txt bash scripts/torch_versions.sh 2.3.0 2.15.0
#
# Each venv lives in ${TORCH_VENVS:-/tmp/dm-torch-venvs}/<version> and is kept
# for the next run. torch comes from the package registry (its default Linux
# wheel, the CUDA build, which also runs on a CPU: a few GB per version with
# its nvidia-* dependencies). On the book's build machine pip's configuration
# adds a local wheel folder and a constraints file capping torch; both are
# blanked here (PIP_FIND_LINKS / PIP_CONSTRAINT), so the version asked for is
# the registry's. torch releases before 2.3 were built against NumPy 1, so
# those venvs get numpy<2.
#
# The test files: those that need nothing beyond torch, numpy, pytest and
# `dm` (found by running every test file with torchvision, scikit-learn,
# gensim, scipy and tqdm made unimportable: test_experiments, test_packing,
# test_table_cli and one test of test_paper load CIFAR through torchvision,
# the others import sklearn, gensim or jupyter tools). The GPU tests skip
# without a GPU; test_gpu.py is listed so that it is at least collected.
set -u
cd "$(dirname "$0")/.."
TESTS=(tests/test_torch_floor.py tests/test_losses.py tests/test_weights.py tests/test_noise.py
       tests/test_packed.py tests/test_resnet.py tests/test_stats.py tests/test_runs.py
       tests/test_distributed.py tests/test_results_page.py tests/test_gpus.py tests/test_gpu.py)
FLOOR=$(sed -n 's/.*"torch>=\([0-9.]*\)".*/\1/p' pyproject.toml)
if [ $# -eq 0 ]; then
  NEWEST=$(PIP_FIND_LINKS=" " PIP_CONSTRAINT=" " python3 -m pip index versions torch 2>/dev/null |
           sed -n 's/^torch (\(.*\))$/\1/p')
  set -- "$FLOOR" "$NEWEST"
fi
VENVS=${TORCH_VENVS:-/tmp/dm-torch-venvs}
OUT=${OUT:-/dev/stdout}
{
  echo "# bash scripts/torch_versions.sh $*; commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- dm tests || echo '+changes'); $(date -u +%Y-%m-%dT%H:%M:%SZ); $(uname -m), python $(python3 -c 'import platform; print(platform.python_version())')"
  echo "# pyproject.toml's floor: torch>=$FLOOR; tests: ${TESTS[*]}"
} > "$OUT"
status=0
for version in "$@"; do
  venv="$VENVS/$version"
  numpy="numpy"
  if [ "$(printf '%s\n' "$version" 2.3 | sort -V | head -1)" != 2.3 ]; then numpy="numpy<2"; fi
  if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import torch, pytest" 2>/dev/null; then
    python3 -m venv --clear "$venv" &&
    PIP_FIND_LINKS=" " PIP_CONSTRAINT=" " "$venv/bin/python" -m pip install -q "torch==$version" "$numpy" pytest \
      || { echo "## torch $version: install failed" >> "$OUT"; status=1; continue; }
  fi
  "$venv/bin/python" -m pip install -q --no-deps --no-build-isolation -e . >/dev/null 2>&1 ||
    "$venv/bin/python" -m pip install -q --no-deps -e . >/dev/null
  {
    echo "## torch $("$venv/bin/python" -c 'import torch, numpy; print(torch.__version__, "numpy", numpy.__version__)')"
    start=$(date +%s)
    "$venv/bin/python" -m pytest -q -p no:cacheprovider -p no:randomly "${TESTS[@]}" 2>&1 | tail -n 25
    rc=${PIPESTATUS[0]}
    echo "# exit status $rc, $(( $(date +%s) - start )) s"
  } >> "$OUT"
  [ "$rc" -eq 0 ] || status=1
done
exit $status
