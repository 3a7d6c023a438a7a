#!/usr/bin/env bash
# The checks that need a CUDA GPU, as one call on a lent machine (the device
# tool: `run` with carry [".gpu"]), or by hand on any CUDA machine:
#
#     OUT=/tmp/gpu bash scripts/gpu_checks.sh
#
# 1. benchmarks/train_step.py --device cuda (ResNet-44, batch 256, the
#    trainer's precision; packed K = 1, 4, 12; the packed trainer), with fewer
#    repeats than its defaults to fit a short lease, then its parts 3 and 4
#    for K = 12 under torch.compile;
# 2. benchmarks/loss_overhead.py on the GPU (time and kernels per forward +
#    backward), float32 and bfloat16; and, where .gpu/before/dm holds an older
#    dm (git archive <commit> dm | tar -x -C .gpu/before), the same for it;
# 3. the GPU tests: tests/test_gpu.py, the CUDA trainer test, the CUDA loss test.
#
# Each part has its own time limit, so one that hangs leaves the others their
# time. Outputs go to $OUT, one file a part.
set -u
OUT=${OUT:-/tmp/dm-gpu-checks}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
PY=${PY:-python3}
began=$(date +%s)
stamp() { echo "# $* ; commit ${COMMIT:-unknown}; $(date -u +%FT%TZ); $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null)"; }

{ nvidia-smi; PYTHONPATH=. $PY -c "import torch, dm; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(), 'bf16', torch.cuda.is_bf16_supported(including_emulation=False))"; } 2>&1 | tee "$OUT/env.txt"

{ stamp "python benchmarks/train_step.py --device cuda --repeats 3 --train-steps 200"
  PYTHONPATH=. timeout ${TRAIN_STEP_LIMIT:-240} $PY benchmarks/train_step.py --device cuda --repeats 3 --train-steps 200
  echo "# exit status $?, $(( $(date +%s) - began )) s since the script began"; } 2>&1 | tee "$OUT/train_step.txt"

{ stamp "python benchmarks/train_step.py --device cuda --parts 3 4 --packs 12 --compile --train-steps 200"
  PYTHONPATH=. timeout ${COMPILED_LIMIT:-240} $PY benchmarks/train_step.py --device cuda --parts 3 4 --packs 12 --compile --train-steps 200
  echo "# exit status $?, $(( $(date +%s) - began )) s since the script began"; } 2>&1 | tee "$OUT/train_step_compiled.txt"

{ for dtype in float32 bfloat16; do
    stamp "python benchmarks/loss_overhead.py --device cuda --dtype $dtype"
    PYTHONPATH=. timeout 60 $PY benchmarks/loss_overhead.py --device cuda --dtype $dtype
    if [ -d .gpu/before/dm ]; then
      echo "# the same with the dm of $(cat .gpu/before/COMMIT 2>/dev/null || echo .gpu/before)"
      PYTHONPATH=.gpu/before timeout 60 $PY benchmarks/loss_overhead.py --device cuda --dtype $dtype
    fi
  done; } 2>&1 | tee "$OUT/loss_overhead.txt"

{ stamp "python -m pytest -s tests/test_gpu.py (and the CUDA tests of test_experiments, test_losses)"
  PYTHONPATH=. timeout ${PYTEST_LIMIT:-200} $PY -m pytest -s -q -p no:cacheprovider --durations=10 tests/test_gpu.py \
    tests/test_experiments.py::test_cuda_autocast_channels_last_run_and_resume \
    tests/test_losses.py::test_works_on_cuda_when_available
  echo "# exit status $?"; } 2>&1 | tee "$OUT/pytest.txt"

echo "# gpu_checks.sh: $(( $(date +%s) - began )) s in all"
