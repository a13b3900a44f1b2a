"""`lifeline feedback pull` from the command line: the secret comes from the named variable."""
from __future__ import annotations

from click.testing import CliRunner

from orchestration.cli import main

from .conftest import TWILIO_TOKEN, message_events
from .test_klaviyo_pull import seed_engagement


def test_pull_without_key_says_which_variable_and_with_key_pulls(sandbox, duck_warehouse, monkeypatch, tmp_path):
    monkeypatch.setenv("LIFELINE_DUCKDB_PATH", str(duck_warehouse.duckdb_path))
    monkeypatch.setenv("LIFELINE_CONFIG", str(tmp_path / "lifeline.yml"))
    (tmp_path / "lifeline.yml").write_text(f"feedback:\n  klaviyo_api_key_env: TEST_KLAVIYO_KEY\n"
                                           f"  klaviyo_base_url: {sandbox.base_url}/klaviyo\n")
    monkeypatch.delenv("TEST_KLAVIYO_KEY", raising=False)
    missing = CliRunner().invoke(main, ["feedback", "pull"])
    assert missing.exit_code == 1 and "TEST_KLAVIYO_KEY is not set" in missing.output
    assert message_events(duck_warehouse) == []

    seed_engagement(sandbox.base_url, people=5)
    monkeypatch.setenv("TEST_KLAVIYO_KEY", TWILIO_TOKEN)
    pulled = CliRunner().invoke(main, ["feedback", "pull"])
    assert pulled.exit_code == 0, pulled.output
    assert TWILIO_TOKEN not in pulled.output and "@" not in pulled.output
    assert "new; cursor 2026-10-01T" in pulled.output and len(message_events(duck_warehouse)) >= 5
