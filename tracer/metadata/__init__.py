"""Kubernetes metadata: the objects (from the API, files or the node itself), the index
that names addresses, and the label/field selector grammar."""
