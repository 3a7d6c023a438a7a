"""The benchmark scripts run and print their figures (their values, speeds,
are never asserted)."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_train_step_quick_prints_every_figure():
    # ResNet-8, batch 32, 256 fabricated images, a few steps: a few seconds on a CPU.
    done = subprocess.run(
        [sys.executable, "benchmarks/train_step.py", "--quick", "--device", "cpu", "--threads", "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    number = r"\d+(\.\d+)?"
    for pattern in (
        r"^device: cpu \(.+\), torch .+, threads 1, precision fp32$",  # the trainer's choice on a CPU
        r"^CPU run: the targets are about a GPU",
        r"^settings: resnet8, 100 classes, batch 32, .*--quick, parts 1 2 3 4$",
        r"^1\. training step ",
        rf"^  F\.cross_entropy +{number} ms/step +{number}x +\(spread +\d+%\)$",
        rf"^  dm\.CCE +{number} ms/step +{number}x +\(spread +\d+%\)$",
        rf"^  dm\.DMLoss\(0\.5, 8\) +{number} ms/step +{number}x +\(spread +\d+%\)$",
        rf"^  DM/CCE: {number} \(target <= 1\.02\); of the fastest repeats: {number}$",
        r"^2\. images/s, CCE: 256 training images ",
        rf"^  trainer \(dm\.experiments\.cifar\.run\) +{number} images/s +\(spread +\d+%\)$",
        rf"^  compute bound \(step on device data\) +{number} images/s +\(spread +\d+%\)$",
        rf"^  plain DataLoader loop \(1 worker\) +{number} images/s +\(spread +\d+%\)$",
        r"^  trainer runs: 2 x 2 iterations on CPU",
        rf"^  trainer/bound: {number} \(target >= 0\.9\)$",
        rf"^  trainer/plain loop: {number}x \(target >= 5x\)$",
        r"^3\. packed training \(dm\.models\.resnet\.PackedResNet\), K runs .*; " + number + " GFLOP per run and step",
        rf"^  one run at a time: {number} ms/step, {number} images/s$",
        rf"^  K =  1: +{number} ms/step, +{number} images/s \({number}x one at a time\), +{number} TFLOP/s; "
        rf"Table 1 at this K: {number} h$",
        rf"^  K =  2: +{number} ms/step, +{number} images/s \({number}x one at a time\)",
        rf"^  projected Table 1 \(84 runs x 30000 iterations, steps only\) on CPU .+: {number} h at K = [12] ",
        r"^4\. the trainer packed \(dm\.experiments\.cifar\.run_packed\): the first 2 rows of Table 1's column clean, "
        r"2 iterations, one evaluation",
        rf"^  {number} ms/iteration \(batch drawing and augmentation included\), {number} images/s; "
        rf"one evaluation {number} s \(256 training images\)$",
        rf"^  projected Table 1 with the trainer \(84 runs in packs of 2, 30000 iterations and 30 evaluations "
        rf"each\) on CPU .+: {number} h$",
        rf"^total: {number} s$",
    ):
        assert re.search(pattern, out, re.MULTILINE), f"no line matches {pattern!r} in:\n{out}"


def test_imdb_quick_prints_every_figure():
    done = subprocess.run([sys.executable, "benchmarks/imdb.py", "--quick", "--workers", "1"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    number = r"\d[\d,]*(\.\d+)?"
    for pattern in (
        r"^CPU: .+ cores; torch .+, 1 thread\(s\); --quick$",
        r"^1\. one run: 200 iterations, batch 100, 2000 vectors of 100$",
        rf"^  CCE +{number} s$",
        rf"^  DM \(r = 0\.4\) +{number} s$",
        rf"^  DM \+ class weights \(P-N 10:1\) +{number} s$",
        rf"^  all 49 runs of Table 5 at the slowest pace: {number} min$",
        rf"^  {number} words/s; 20 epochs over ~27M words \(estimated size of the real corpus\): ~{number} min$",
        rf"^  {number} s for {number} MB$",
        rf"^total: {number} s$",
    ):
        assert re.search(pattern, done.stdout, re.MULTILINE), f"no line matches {pattern!r} in:\n{done.stdout}"
