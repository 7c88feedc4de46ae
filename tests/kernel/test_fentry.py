"""fentry loading on the running kernel: the target's BTF id, doctor's verdict and
our own loader agree (the NAT hook's use of it runs in tests/kernel/test_nat_hook.py,
inside the kernel matrix VMs)."""

from __future__ import annotations

import os

import pytest

from tracer.kernel.btf import BtfError
from tracer.kernel.features import fentry_available
from tracer.kernel.fentry import module_btf_fd, prog_load, resolve_target

pytestmark = pytest.mark.kernel

RET0 = bytes.fromhex("b700000000000000" "9500000000000000")  # r0 = 0; exit


def test_loader_agrees_with_doctor_on_a_vmlinux_function() -> None:
    target = resolve_target("tcp_v4_connect")
    assert target.module is None and target.btf_id > 0
    fd, why = prog_load("nt_test_fentry", RET0, target.btf_id)
    ok, doctor_why = fentry_available()
    if fd >= 0:
        os.close(fd)
    assert (fd >= 0) == ok
    if not ok:  # the errno (and the verifier's words, if any) doctor shows
        assert why and why in doctor_why


def test_a_module_without_btf_is_a_clear_error() -> None:
    with pytest.raises(BtfError, match="no kernel BTF object for module no_such_module"):
        module_btf_fd("no_such_module")
