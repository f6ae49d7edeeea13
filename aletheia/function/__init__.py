"""The storage function's logic: profiling every finalized object, and re-driving stale work."""
