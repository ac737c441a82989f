"""The Python SDK: v1-named classes that talk to the management API over HTTP."""
