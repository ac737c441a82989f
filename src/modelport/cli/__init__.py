"""The ``modelport`` command line: click commands, the only place that prints."""
