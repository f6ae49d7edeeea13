"""Runs: the public tracking API, the run writer, its journal, sync, and what a run captures."""
