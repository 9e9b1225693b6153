"""The training engine: config, data pipeline, the per-worker PyTorch loop, Ray wrapping, evaluation, reports."""
