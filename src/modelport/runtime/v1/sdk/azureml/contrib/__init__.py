"""``azureml.contrib`` inside a replica: only ``services``."""
