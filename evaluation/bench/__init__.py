"""The benchmarks of ``strata bench NAME``, one module each, with a ``run(argv) -> int`` (torch-free at import)."""
