"""The replica: ``python -m modelport.runtime`` serves a v1 entry script.

It depends on the standard library, httptools, (when present) uvloop and, for
``@rawhttp`` scripts only, werkzeug, so it fits into user environments; of the rest
of modelport it imports only ``httpserver``.  The folders under ``v1/`` are not
modules of this package: they hold the v1 import paths replicas provide (``v1paths``).
"""
