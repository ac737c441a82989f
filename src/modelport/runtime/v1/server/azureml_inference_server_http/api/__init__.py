"""``azureml_inference_server_http.api`` inside a replica: ``aml_request``, ``aml_response``."""
