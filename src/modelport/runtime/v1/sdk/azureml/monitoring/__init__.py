"""``from azureml.monitoring import ModelDataCollector`` inside a replica."""

from .modeldatacollector import ModelDataCollector

__all__ = ["ModelDataCollector"]
