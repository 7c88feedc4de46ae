"""The node lab: Kubernetes-shaped nodes built from network namespaces, broken the
way real clusters break, with their Kubernetes objects served over HTTP on loopback."""
