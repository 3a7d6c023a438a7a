"""The paper's experiments, one module each: `dm.experiments.cifar` (Tables 1
and 9), `dm.experiments.imdb` (Table 5), `dm.experiments.digits` (the CPU
checks); the cells of every table (`dm.experiments.tables`), the authors'
logs (`dm.experiments.authors`) and what the notebooks share
(`dm.experiments.notebook`)."""
