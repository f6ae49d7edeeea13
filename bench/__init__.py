"""Benchmarks of aletheia side by side with the tools users would pick instead."""
