"""Stand-in for the v1 SDK's ``azureml`` in modelport replicas (modelport.runtime.v1paths)."""
