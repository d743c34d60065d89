"""Fixtures shared by every test directory."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.kernels import KERNELS, using


@pytest.fixture(params=KERNELS)
def kernel(request: pytest.FixtureRequest) -> Iterator[str]:
    """Run the test once with each kernel: models it loads use that one (tests/kernels.py)."""
    with using(request.param):
        yield request.param
