"""Benchmarks: ``python -m benchmarks.<name>``; each prints ``NAME: VALUE (goal …)`` lines."""
