"""``azureml.core.model`` inside a replica: ``Model.get_model_path(name, version, _workspace)``."""

from modelport.runtime.models import Model
from modelport.runtime.v1paths import unavailable

__all__ = ["Model"]
__getattr__ = unavailable(__name__)
