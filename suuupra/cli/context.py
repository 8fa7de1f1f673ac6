"""What every command shares: the settings chosen by the global options, and the console."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.console import Console

from suuupra.settings import Settings, SettingsError, load_settings

# Epoch milliseconds before 1973-03-03 are far more likely epoch seconds typed by mistake.
EPOCH_MS_FLOOR = 100_000_000_000

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


@dataclass
class CliState:
    config_file: Path | None = None
    profile: str | None = None
    _settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            try:
                self._settings = load_settings(self.config_file, self.profile)
            except (SettingsError, ValueError) as error:
                raise fail(f"settings: {error}") from error
        return self._settings


def state(ctx: typer.Context) -> CliState:
    root = ctx.find_root()
    if not isinstance(root.obj, CliState):
        root.obj = CliState()
    return root.obj


def fail(message: str, code: int = 1) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def parse_moment(text: str) -> datetime:
    """'now', an ISO-8601 time (UTC unless it says otherwise) or epoch milliseconds, as an aware datetime."""
    if text == "now":
        return datetime.now(UTC)
    if text.isdigit():
        if int(text) < EPOCH_MS_FLOOR:
            raise typer.BadParameter(f"'{text}' looks like epoch seconds; give epoch milliseconds or an ISO time")
        return datetime.fromtimestamp(int(text) / 1000, UTC)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as error:
        raise typer.BadParameter(
            f"'{text}' is not 'now', an ISO time like 2026-01-01T00:00:00Z or epoch milliseconds"
        ) from error
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
