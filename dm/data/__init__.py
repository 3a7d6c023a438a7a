"""The data sets (CIFAR, IMDB and its paragraph vectors, scikit-learn's
digits), their caches and checksums, the samplers and the CIFAR input
pipeline. Imports nothing from `dm.training`, `dm.experiments` or `dm.report`."""
