"""Toy data and seeded weights for tests, benchmarks and the quick start (not used by the package itself)."""
