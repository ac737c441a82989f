"""``from azureml.contrib.services.aml_request import rawhttp, AMLRequest``."""

from modelport.runtime.api import rawhttp
from modelport.runtime.wsgi import AMLRequest

__all__ = ["AMLRequest", "rawhttp"]
