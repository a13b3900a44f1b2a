"""Fixtures for the sync tests: the real sandbox destinations on a free loopback port."""
from __future__ import annotations

import pytest

from syncs.sandbox.server import run_in_thread

SANDBOX_TOKEN = "sandbox-token"


@pytest.fixture
def sandbox(tmp_path):
    """The sandbox with its rate limits off (the clients' own limiters are tested separately)."""
    with run_in_thread(tmp_path / "sandbox", port=0, token=SANDBOX_TOKEN, rate_limits=False) as server:
        yield server
