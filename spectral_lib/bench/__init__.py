"""Benchmarks: the cost of the spectral terms next to the pointwise loss (``python -m spectral_lib.bench.losses``)."""
