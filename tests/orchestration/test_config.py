import pytest

from orchestration.config import ConfigError, load_config


def test_defaults_without_a_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LIFELINE_CONFIG", raising=False)
    config = load_config(None)
    assert config.thresholds.max_remove_share == 0.2


def test_valid_file_is_loaded(tmp_path):
    path = tmp_path / "lifeline.yml"
    path.write_text("landing_dir: drop\nschedules:\n  incremental_cron: '*/15 * * * *'\n"
                    "alerts:\n  smtp:\n    recipients: [a@example.com]\n")
    config = load_config(path)
    assert config.schedules.incremental_cron == "*/15 * * * *"
    assert config.landing_dir == (tmp_path / "drop").resolve()
    assert config.alerts.smtp.recipients == ["a@example.com"]


@pytest.mark.parametrize("text, line, field", [
    ("schedules:\n  incremental_cron: 'every hour'\n", 2, "schedules.incremental_cron"),
    ("thresholds:\n  max_remove_share: 3\n", 2, "thresholds.max_remove_share"),
    ("alerts:\n  smtp:\n    port: 25\n", 3, "alerts.smtp.recipients"),
    ("landing_dir: x\nunknown_key: 1\n", 2, "unknown_key"),
])
def test_errors_name_file_line_and_field(tmp_path, text, line, field):
    path = tmp_path / "lifeline.yml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert f"{path}:{line}: {field}" in str(err.value)


def test_invalid_yaml_is_a_clear_error(tmp_path):
    path = tmp_path / "lifeline.yml"
    path.write_text("schedules: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)
