"""The replica: ``python -m modelport.runtime`` serves a v1 entry script.

It depends on the standard library, httptools and (when present) uvloop, so it
fits into user environments; it imports nothing else from modelport but
``modelport.errors``-free helpers of its own.
"""
