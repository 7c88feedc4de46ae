"""Command-line interface: the only place an exception becomes a message and an exit code."""
