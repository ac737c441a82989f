"""A real Kubernetes control plane for tests, with a node agent that runs pods as processes.

``harness`` starts and stops etcd, kube-apiserver, kube-controller-manager, kube-scheduler
and ``node_agent`` on loopback; ``fixtures`` gives the tests a session-scoped cluster.
"""
