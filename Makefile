# Shortcuts for the scripts in bin/ (as root, like them).
PY := .venv/bin/python
KERNELS ?=

.PHONY: setup test matrix

setup:
	bin/setup

test:
	bin/test

# Boot each kernel of the matrix under qemu and run the kprobe/fentry NAT hook, doctor
# and BTF tests inside it; `make matrix KERNELS=debian-6.1` for one of them.
matrix: setup
	PYTHONPATH=$(CURDIR) $(PY) -m tests.kernels.matrix $(KERNELS)
