"""``azureml.monitoring.modeldatacollector`` in a replica (modelport.runtime.datacollector)."""

from modelport.runtime.datacollector import ModelDataCollector

__all__ = ["ModelDataCollector"]
