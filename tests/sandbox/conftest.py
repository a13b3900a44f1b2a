"""Fixtures for the sandbox tests: a real server on 127.0.0.1 (port 0) in a background thread."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from syncs.sandbox.server import SandboxThread, run_in_thread

TOKEN = "test-token"
KLAVIYO_HEADERS = {"Authorization": f"Klaviyo-API-Key {TOKEN}", "revision": "2026-07-15",
                   "Content-Type": "application/vnd.api+json"}


@pytest.fixture
def start_sandbox(tmp_path: Path) -> Iterator[Callable[..., SandboxThread]]:
    started: list[SandboxThread] = []

    def start(**opts) -> SandboxThread:
        opts.setdefault("token", TOKEN)
        sandbox = run_in_thread(opts.pop("state_dir", tmp_path / "state"), **opts)
        started.append(sandbox)
        return sandbox

    yield start
    for sandbox in started:
        sandbox.stop()


@pytest.fixture
def sandbox(start_sandbox) -> SandboxThread:
    return start_sandbox()
