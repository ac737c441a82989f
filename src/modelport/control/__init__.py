"""The control plane: management REST API, store access, (later) reconciler."""
