"""nodetrace: an eBPF connectivity tracer for Kubernetes nodes."""

__version__ = "0.1.0"
