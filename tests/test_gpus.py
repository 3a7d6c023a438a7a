"""dm.training.gpus: the H200 figures it holds are the measured files' own, and its
estimates reproduce the benchmark's projection from them."""

import re
from pathlib import Path

import pytest
import torch

import dm.report.paper
import dm.training.gpus as gpus
from dm.experiments import cifar as ex

MEASURED = Path(__file__).resolve().parents[1] / "benchmarks" / "measured"


def measured(name: str) -> str:
    return (MEASURED / name).read_text()


def test_the_h200_figures_are_those_of_the_measured_files():
    eager = measured("train_step-h200.txt")
    steps = {int(k): float(ms) for k, ms in re.findall(r"K = +(\d+): +([\d.]+) ms/step", eager)}
    assert steps == gpus.H200["step_ms"]
    trainer, compiled = measured("train_step_trainer-h200.txt"), measured("train_step_compiled-h200.txt")
    for text, key in ((trainer, "eager"), (compiled, "compiled")):
        (ms,) = re.findall(r"([\d.]+) ms/iteration", text)
        assert float(ms) == gpus.H200["trainer_ms"][key]
        (hours,) = re.findall(r"with the trainer .* on NVIDIA H200: ([\d.]+) h", text)
        assert float(hours) == gpus.H200["table1_hours"][key]
    assert float(re.search(r"one evaluation ([\d.]+) s", trainer)[1]) == gpus.H200["evaluation_s"]
    assert int(re.search(r"total: (\d+) s", compiled)[1]) == gpus.H200["compiled_benchmark_total_s"]
    assert "settings: resnet44, 100 classes, batch 256" in eager


def test_peaks_agree_with_the_benchmark():
    text = (MEASURED.parent / "train_step.py").read_text()
    for gpu, peak in gpus.PEAK_TFLOPS.items():
        assert re.search(rf'"{gpu}": {peak}\b', text), gpu


def test_flop_count_is_the_benchmarks():
    (gflop,) = re.findall(r"([\d.]+) GFLOP per run and step", measured("train_step-h200.txt"))
    assert round(gpus.step_flops("resnet44", 100, 256) / 1e9, 1) == float(gflop)
    assert gpus.step_flops("resnet56", 10, 256) > 1.25 * gpus.step_flops("resnet44", 100, 256)


def table1_packs():
    base = ex.preset("paper", "cifar100")
    return ex.packs([dm.experiments.tables.table1_config(r, c, base)
                     for r in dm.experiments.tables.table1_rows() for c in dm.experiments.tables.table1_columns()])


@pytest.mark.parametrize("compiled", [False, True])
def test_h200_hours_reproduce_the_benchmarks_projection_of_table1(compiled):
    hours = gpus.h200_hours(table1_packs(), compiled=compiled)
    assert round(hours, 1) == gpus.H200["table1_hours"]["compiled" if compiled else "eager"]


def test_estimates_scale_by_the_stated_ratios():
    est = gpus.estimate_hours(2.0, "T4")
    assert est["compute"] == pytest.approx(2.0 * 989 / 65)
    assert est["bandwidth"] == pytest.approx(2.0 * 4800 / 320)
    assert gpus.estimate_hours(1.0, "H200") == {"compute": 1.0, "bandwidth": 1.0}


def test_activation_bytes_are_per_image_and_halve_in_16_bits():
    per_image = gpus.activation_bytes("resnet8", 10, batch_size=2)
    assert gpus.activation_bytes("resnet8", 10, batch_size=4) == pytest.approx(per_image, rel=1e-6)
    fp32 = gpus.activation_bytes("resnet8", 10, dtype=torch.float32)  # autocast to float32: none
    assert 1.2 * per_image < fp32 < 2.5 * per_image
    # ResNet-8's first stage alone keeps its 16 x 32 x 32 maps: several, in 2 bytes each.
    assert per_image > 5 * 16 * 32 * 32 * 2


def test_max_pack_grows_with_memory_and_is_bounded():
    assert gpus.max_pack("resnet44", 100, 1.0) == 1
    small, large = gpus.max_pack("resnet44", 100, 4.0), gpus.max_pack("resnet44", 100, 8.0)
    assert 1 <= small < large <= 12
    memory = gpus.training_memory("resnet44", 100, small)
    assert memory["total"] <= 4.0 - 2.0 < gpus.training_memory("resnet44", 100, small + 1)["total"]
