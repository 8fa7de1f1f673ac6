from __future__ import annotations

from pathlib import Path

import pytest

from suuupra.settings import SettingsError, load_settings


def test_local_profile_points_at_loopback_with_replication_one() -> None:
    settings = load_settings(profile="local")
    assert settings.kafka.bootstrap.startswith("127.0.0.1:")
    assert settings.kafka.replication_factor == 1
    assert settings.registry.ccompat_url.endswith("/apis/ccompat/v7")


def test_production_profile_needs_brokers_and_passes_security_through(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SettingsError, match="SUUUPRA_KAFKA__BOOTSTRAP_SERVERS"):
        load_settings(profile="production")
    monkeypatch.setenv("SUUUPRA_KAFKA__BOOTSTRAP_SERVERS", "b1:9093,b2:9093,b3:9093")
    monkeypatch.setenv("SUUUPRA_KAFKA__SASL_USERNAME", "svc-streams")
    monkeypatch.setenv("SUUUPRA_KAFKA__SASL_PASSWORD", "from-a-vault")
    settings = load_settings(profile="production")
    assert (settings.kafka.replication_factor, settings.kafka.min_insync_replicas) == (3, 2)
    config = settings.kafka.client_config()
    assert config["bootstrap.servers"] == "b1:9093,b2:9093,b3:9093"
    assert config["security.protocol"] == "SASL_SSL"
    assert config["sasl.password"] == "from-a-vault"
    assert "from-a-vault" not in repr(settings)


def test_environment_beats_file_beats_profile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "suuupra.toml"
    config.write_text('[kafka]\nport = 29092\n[topics]\nuser = "staging.user.events"\n')
    assert load_settings(config).kafka.port == 29092
    assert load_settings(config).topics.user == "staging.user.events"
    monkeypatch.setenv("SUUUPRA_KAFKA__PORT", "39092")
    assert load_settings(config).kafka.port == 39092


def test_bad_settings_say_what_to_change(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="unknown profile 'staging'"):
        load_settings(profile="staging")
    with pytest.raises(SettingsError, match="does not exist"):
        load_settings(tmp_path / "missing.toml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("kafka: [unclosed")
    with pytest.raises(SettingsError, match="not valid YAML"):
        load_settings(broken)


def test_profile_option_and_environment_must_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUUUPRA_PROFILE", "local")
    with pytest.raises(SettingsError, match="conflicts with SUUUPRA_PROFILE=local"):
        load_settings(profile="production")
