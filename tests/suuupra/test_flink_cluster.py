"""The session cluster's configuration: one value per key, and the cluster's temporary files in its own folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from suuupra.flink_cluster import FlinkCluster
from suuupra.settings import Settings


def _cluster(settings: Settings, data_dir: Path) -> FlinkCluster:
    return FlinkCluster(settings.model_copy(update={"paths": settings.paths.model_copy(update={"data_dir": data_dir})}))


def test_the_config_overrides_the_shipped_values_and_keeps_the_java_options(settings: Settings, tmp_path: Path) -> None:
    cluster = _cluster(settings, tmp_path)
    cluster.write_config()
    text = (cluster.conf_dir / "config.yaml").read_text()
    config = yaml.safe_load(text)
    assert all(not isinstance(value, dict) for value in config.values()), "nested keys left beside the dotted ones"
    # The shipped file says 1600m: the cluster's own value is the only one written.
    assert config["jobmanager.memory.process.size"] == "1024m"
    assert text.count("jobmanager.memory.process.size") == 1
    assert config["rest.port"] == settings.flink.rest_port
    java_options = config["env.java.opts.all"].split()
    assert "--add-opens=java.base/java.lang=ALL-UNNAMED" in java_options  # Java 17+ needs the shipped options
    assert f"-Djava.io.tmpdir={cluster.temp_dir}" in java_options
    assert config["io.tmp.dirs"] == str(cluster.temp_dir)


def test_a_new_config_clears_what_a_killed_cluster_left(settings: Settings, tmp_path: Path) -> None:
    cluster = _cluster(settings, tmp_path)
    left = cluster.temp_dir / "flink-io-0f3c" / "spill"
    left.mkdir(parents=True)
    (cluster.temp_dir / "flink-rpc-akka0f3c.jar").write_bytes(b"PK")
    cluster.write_config()
    assert cluster.temp_dir.is_dir()
    assert list(cluster.temp_dir.iterdir()) == []


def test_a_cluster_whose_jvm_still_runs_keeps_its_files(settings: Settings, tmp_path: Path) -> None:
    cluster = _cluster(settings, tmp_path)
    (cluster.home / "run").mkdir(parents=True)
    # A JobManager whose REST API did not answer in time, but which runs: this process stands in for it.
    (cluster.home / "run" / "flink-root-standalonesession.pid").write_text(f"{os.getpid()}\n")
    spill = cluster.temp_dir / "flink-io-0f3c"
    spill.mkdir(parents=True)
    cluster.write_config()
    assert cluster.running_pids() == [os.getpid()]
    assert spill.is_dir()


@pytest.mark.parametrize("folder", ["with space", "it's", "$HOME", "a,b", "a:b"])
def test_a_folder_the_scripts_would_misread_keeps_flinks_default(
    settings: Settings, tmp_path: Path, folder: str
) -> None:
    cluster = _cluster(settings, tmp_path / folder)
    cluster.write_config()
    config = yaml.safe_load((cluster.conf_dir / "config.yaml").read_text())
    # Flink's daemon script evaluates the JVM options as shell words; io.tmp.dirs splits at ',' and ':'.
    assert "java.io.tmpdir" not in config["env.java.opts.all"]
    assert "io.tmp.dirs" not in config
    assert "--add-opens=java.base/java.lang=ALL-UNNAMED" in config["env.java.opts.all"].split()
