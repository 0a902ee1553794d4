"""Models for a run: a registry of built-in architectures and loading of custom model files."""

from .errors import ModelError
from .registry import ARCHITECTURES, build_model, check_model

__all__ = ["ARCHITECTURES", "ModelError", "build_model", "check_model"]
