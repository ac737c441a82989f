"""The Kubernetes compute target: the only package that imports a Kubernetes client."""
