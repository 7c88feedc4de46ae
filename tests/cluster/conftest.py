"""The cluster tier: tests marked `cluster` run only inside the vagrant/ cluster and are
skipped elsewhere with the reason. Unlike the kernel tier, a skipped cluster test never
fails a run (tests/conftest.py counts only the `kernel` marker): no CI machine has one."""

from __future__ import annotations

import pytest

from tests.cluster.support import cluster_skip_reason


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = cluster_skip_reason()
    if reason is None:
        return
    for item in items:
        if item.get_closest_marker("cluster"):
            item.add_marker(pytest.mark.skip(reason=reason))
