"""Autoscaling: a pure policy, and the capacity formula of the v1 docs."""
