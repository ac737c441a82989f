"""``azureml.core`` inside a replica: ``Model``, for ``Model.get_model_path``."""

from modelport.runtime.v1paths import unavailable

from .model import Model

__all__ = ["Model"]
__getattr__ = unavailable(__name__)
