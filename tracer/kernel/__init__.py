"""Everything that talks to the kernel's BPF machinery.  Only modules in this package
import bcc, and only lazily, so replay, the TUI and unit tests run without it."""
