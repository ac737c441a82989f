"""The router: the front door for scoring traffic.

A separate process.  It receives the route table from the control plane as plain
data on its admin port and imports nothing of the control plane.
"""
