from __future__ import annotations

import typing
from pathlib import Path

import pytest
from pydantic import BaseModel

from suuupra import settings as settings_module
from suuupra.cli.platform_cmd import kafka_shape
from suuupra.settings import SettingsError, installed_jdks, load_settings, newest_job_jdk, record_platform_state


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


def test_what_platform_up_recorded_is_read_from_the_data_folder_and_files_and_environment_still_win(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SUUUPRA_PATHS__DATA_DIR", str(tmp_path))
    assert load_settings(profile="local").kafka.brokers == 1
    recorded = record_platform_state(load_settings(profile="local"), "kafka", dict(kafka_shape(3)))
    assert recorded == tmp_path / "platform.toml"
    settings = load_settings(profile="local")
    assert (settings.kafka.brokers, settings.kafka.replication_factor, settings.kafka.min_insync_replicas) == (3, 3, 2)
    # Every node in the bootstrap list, so a client finds the cluster with any one of them down.
    port = settings.kafka.port
    assert settings.kafka.bootstrap == f"127.0.0.1:{port},127.0.0.1:{port + 2},127.0.0.1:{port + 4}"
    record_platform_state(settings, "platform", {"startup_timeout_s": 99})
    assert (load_settings(profile="local").kafka.brokers, load_settings().platform.startup_timeout_s) == (3, 99)
    config = tmp_path / "mine.toml"
    config.write_text("[kafka]\nmin_insync_replicas = 3\n")
    assert load_settings(config).kafka.min_insync_replicas == 3
    monkeypatch.setenv("SUUUPRA_KAFKA__BROKERS", "1")
    assert load_settings(profile="local").kafka.brokers == 1


def test_a_cluster_of_three_takes_the_production_replication_and_a_single_node_keeps_one() -> None:
    assert kafka_shape(3) == {"brokers": 3, "replication_factor": 3, "min_insync_replicas": 2}
    assert kafka_shape(1) == {"brokers": 1, "replication_factor": 1, "min_insync_replicas": 1}
    assert kafka_shape(5) == {"brokers": 5, "replication_factor": 3, "min_insync_replicas": 2}


def test_a_java_home_without_a_java_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUUUPRA_FLINK__JAVA_HOME", str(tmp_path))
    with pytest.raises(SettingsError, match=f"flink.java_home {tmp_path} has no bin/java: point it at a JDK's home"):
        load_settings()


def test_sink_batches_that_could_only_shrink_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUUUPRA_FLINK__SINK_BATCH_ROWS", "60000")
    with pytest.raises(
        SettingsError, match=r"flink.sink_batch_max_rows \(50000\) is below flink.sink_batch_rows \(60000\)"
    ):
        load_settings()
    monkeypatch.setenv("SUUUPRA_FLINK__SINK_BATCH_MAX_ROWS", "60000")
    assert load_settings().flink.sink_batch_max_rows == 60_000


def test_jobs_run_on_the_newest_jdk_of_the_versions_they_take(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def install(folder: str, version: str, java: bool = True) -> Path:
        home = tmp_path / folder
        (home / "bin").mkdir(parents=True)
        (home / "release").write_text(f'IMPLEMENTOR="x"\nJAVA_VERSION="{version}"\n')
        if java:
            (home / "bin" / "java").write_text("")
        return home

    for variable in ("SUUUPRA_FLINK__JAVA_HOME", "SUUUPRA_CONFIG"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setattr(settings_module, "JVM_DIR", tmp_path)
    assert newest_job_jdk() is None
    install("java-17-openjdk-amd64", "17.0.15")
    install("jdk-26", "26")  # newer than any version the jobs take
    assert newest_job_jdk() is None
    jdk21 = install("temurin-21-jdk-amd64", "21.0.8")
    assert newest_job_jdk() == jdk21
    install("broken-25", "25.0.1", java=False)
    assert newest_job_jdk() == jdk21
    jdk25 = install("temurin-25-jdk-amd64", "25.0.3")
    assert newest_job_jdk() == jdk25
    assert load_settings().flink.java_home == jdk25
    monkeypatch.setenv("SUUUPRA_FLINK__JAVA_HOME", str(jdk21))
    assert load_settings().flink.java_home == jdk21
    monkeypatch.setenv("SUUUPRA_FLINK__JAVA_HOME", "")  # opted out: JAVA_HOME's Java
    assert load_settings().flink.java_home is None


def test_installed_jdks_lists_each_jdk_once_whatever_links_name_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(settings_module, "JVM_DIR", tmp_path)
    for folder, release in (("java-17-openjdk-amd64", 'JAVA_VERSION="17.0.15"'), ("mystery", 'IMPLEMENTOR="x"'),
                            ("no-java", 'JAVA_VERSION="21"')):  # fmt: skip
        home = tmp_path / folder
        (home / "bin").mkdir(parents=True)
        (home / "release").write_text(release + "\n")
        if folder != "no-java":
            (home / "bin" / "java").write_text("")
    (tmp_path / "java-1.17.0-openjdk-amd64").symlink_to(tmp_path / "java-17-openjdk-amd64")  # as Debian links it
    # The link sorts first, so it names the JDK; a release file without a version is listed, with None.
    assert installed_jdks() == {tmp_path / "java-1.17.0-openjdk-amd64": 17, tmp_path / "mystery": None}


def test_a_child_process_loads_the_values_the_parent_set_none_included(monkeypatch: pytest.MonkeyPatch) -> None:
    # A job started by the CLI or a test reads its settings from SUUUPRA_* variables: every value the parent holds
    # must come back as it was, None too where the field's default is something else (the JVM's own collector, no
    # project JDK, partitions never idle ...): every such field of every section, whichever fields those are.
    settings = load_settings(profile="local")
    sections = list(type(settings).model_fields)
    changed: dict[str, object] = {}
    nones: list[str] = []
    for section in sections:
        values = getattr(settings, section)
        if not isinstance(values, BaseModel):
            continue
        update = {
            name: None
            for name, field in type(values).model_fields.items()
            if _allows_none(field.annotation) and field.get_default(call_default_factory=True) is not None
        }
        nones += [f"{section}.{name}" for name in update]
        changed[section] = values.model_copy(update=update)
    assert "flink.local_gc" in nones and "flink.partition_idle_after_records" in nones
    parent = settings.model_copy(update=changed)
    overrides = settings_module.environment_overrides(parent, *changed)
    assert overrides["SUUUPRA_FLINK__LOCAL_GC"] == ""
    for name, value in overrides.items():
        monkeypatch.setenv(name, value)
    child = load_settings(profile="local")
    for section in changed:
        assert getattr(child, section) == getattr(parent, section), section
    # Back to a value: the child takes it.
    monkeypatch.setenv("SUUUPRA_FLINK__LOCAL_GC", "G1GC")
    assert load_settings(profile="local").flink.local_gc == "G1GC"


def _allows_none(annotation: object) -> bool:
    return type(None) in typing.get_args(annotation)
