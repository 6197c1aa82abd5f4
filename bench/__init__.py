"""Benchmarks, run on purpose (`make bench`), never as tests."""
