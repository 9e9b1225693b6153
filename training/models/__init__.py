"""The model zoo: ``list_models()`` and ``create_model(name, preset)`` (PyTorch loads lazily)."""
from training.models.factory import create_model, list_models, list_presets, resolve_config

__all__ = ["create_model", "list_models", "list_presets", "resolve_config"]
