"""Training: the one loop (`dm.training.loop.fit`), the step with its
precision and data parallelism (`dm.training.step`), the training-set
measures (`dm.training.measures`), run folders and provenance
(`dm.training.runs`) and GPU cost estimates (`dm.training.gpus`). Takes plain
values, never an experiment's configuration."""
