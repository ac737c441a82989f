"""``azureml.contrib.services`` inside a replica: ``aml_request`` and ``aml_response``."""
