"""Every command answers --help; the README's journey works end to end through the CLI."""

from __future__ import annotations

import re
from typing import Any

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from suuupra.cli.main import app
from suuupra.settings import Settings

runner = CliRunner()


def _command_paths(command: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = [prefix]
    for name, sub in (getattr(command, "commands", None) or {}).items():
        paths += _command_paths(sub, (*prefix, name))
    return paths


@pytest.mark.parametrize("path", _command_paths(get_command(app)), ids=lambda p: " ".join(p) or "suuupra")
def test_every_command_has_help(path: tuple[str, ...]) -> None:
    assert len(_command_paths(get_command(app))) >= 10, "the walk must reach the sub-commands"
    result = runner.invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


def _env(settings: Settings) -> dict[str, str]:
    return {f"SUUUPRA_TOPICS__{k.upper()}": v for k, v in settings.topics.model_dump().items()}


def test_simulate_then_summary_reads_back_what_was_sent(isolated: Settings) -> None:
    env = _env(isolated)
    sent = runner.invoke(
        app, ["simulate", "--count", "1500", "--rate", "0", "--seed", "5", "--malformed", "0.02",
              "--start-time", "2026-03-01T00:00:00Z", "--require-empty"], env=env,
    )  # fmt: skip
    assert sent.exit_code == 0, sent.output
    assert "1500 events" in sent.output

    malformed = int(re.search(r"1500 events \+ (\d+) malformed records", sent.output.replace("\n", " "))[1])  # type: ignore[index]
    assert malformed > 0

    summary = runner.invoke(app, ["summary"], env=env)
    assert summary.exit_code == 0, summary.output
    text = summary.output.replace("\n", " ")
    assert "1500 readable events" in text
    assert f"{malformed} unreadable records" in text

    # A second run that needs empty topics is refused, and told what to do.
    again = runner.invoke(app, ["simulate", "--count", "10", "--rate", "0", "--require-empty"], env=env)
    assert again.exit_code == 2, again.output
    text = " ".join(again.output.split())
    assert f"already hold {1500 + malformed:,} records" in text and "suuupra platform reset --yes" in text


def test_settings_errors_are_reported_not_raised() -> None:
    result = runner.invoke(app, ["--profile", "production", "topics", "apply"], env={})
    assert result.exit_code == 1
    assert "SUUUPRA_KAFKA__BOOTSTRAP_SERVERS" in result.output
