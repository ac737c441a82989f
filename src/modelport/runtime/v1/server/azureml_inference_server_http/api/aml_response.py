"""``from azureml_inference_server_http.api.aml_response import AMLResponse``."""

from modelport.runtime.wsgi import AMLResponse

__all__ = ["AMLResponse"]
