"""Stand-in for the v1 scoring server's package inside modelport replicas: only ``api``."""
