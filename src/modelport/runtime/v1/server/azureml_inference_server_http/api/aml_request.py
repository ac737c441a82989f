"""``from azureml_inference_server_http.api.aml_request import rawhttp, AMLRequest``."""

from modelport.runtime.api import rawhttp
from modelport.runtime.wsgi import AMLRequest

__all__ = ["AMLRequest", "rawhttp"]
