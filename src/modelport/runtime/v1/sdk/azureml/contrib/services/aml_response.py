"""``from azureml.contrib.services.aml_response import AMLResponse``."""

from modelport.runtime.wsgi import AMLResponse

__all__ = ["AMLResponse"]
