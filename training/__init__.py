"""Strata's training side: model zoo, data, text parsing, losses, metrics and the Ray Train entry.

Importing this package (or its torch-free modules: ``training.text.parser``, ``training.data``,
``training.metrics``, ``common.config``, ``training.layout``) must not import PyTorch.
"""
