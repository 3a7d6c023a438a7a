"""One short CIFAR-10 run on a CPU, on real images: the JPEG copy of CIFAR-10
(real images re-encoded at JPEG quality 75, not the official pixels), clean
labels, a ResNet-8, at a reduced scale (REDUCED below). It shows that the whole
CIFAR pipeline of `dm.experiments.cifar` (loader, batched augmentation, trainer,
evaluation, result.json) learns real images; it reproduces nothing of the
paper. Chapter 9 shows the stored result.

    python scripts/cifar10_jpeg_cpu.py --data-root DIR [--runs-dir runs/cifar10_jpeg_cpu]
    python -m dm collect-results runs/cifar10_jpeg_cpu      # into results/cifar10_jpeg_cpu/

DIR holds `cifar-10-batches-py/` as the project machines' converter writes it
from the JPEG archive (`dm.data.cifar.load` recognises the copy by its content
digest). The run checkpoints every evaluation: rerunning the command resumes it.
"""

import argparse
import sys

from dm import cifar, experiments

# The reduced scale, chosen to take about a quarter of an hour on a 2-core CPU:
# ResNet-8, batch 128, 2,000 iterations (5.1 passes over the 50k training
# images), lr 0.1 divided by 10 at 1,000 and 1,500 iterations; everything else
# as in the paper's CIFAR setting (SGD, momentum 0.9, weight decay 1e-4, pad-4
# crops and flips). Test accuracy every 200 iterations.
REDUCED = experiments.Config(
    dataset="cifar10", model="resnet8", method="CCE", noise_rate=0.0, iterations=2000, batch_size=128,
    lr=0.1, lr_milestones=(1000, 1500), eval_every=200, checkpoint_every=200)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", required=True, help="folder holding cifar-10-batches-py/")
    parser.add_argument("--runs-dir", default="runs/cifar10_jpeg_cpu")
    args = parser.parse_args(argv)
    data = cifar.load("cifar10", args.data_root)
    print(data.identity()["description"], flush=True)
    result = experiments.run(REDUCED, args.runs_dir, data, device="cpu", eval_train=False)
    print(f"final test accuracy {result['final_test_accuracy']:.4f}, "
          f"{result['wall_seconds'] / 60:.1f} min on {result['hardware']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
