"""Benchmarks: the scorer's variants and the peers a user would pick instead, in one run."""
