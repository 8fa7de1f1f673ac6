"""Dashboard panels: saved queries over the analytics tables, one file each in `infra/clickhouse/panels/<name>.sql`.

A panel file starts with `-- title: ...` and `-- description: ...` (continued on `--   ` lines) and may use two
placeholders: `{database}` and `{hours}` (look at the last N hours of data, counted back from the newest row so a
replayed or paused stream still shows something; 0 = all data). Queries read with FINAL, so rows the job wrote twice
count once, and stick to SQL both ClickHouse 18.16 and current ClickHouse accept. A panel must end with ORDER BY (no
LIMIT, FORMAT or trailing `;`): `run_panel` appends the row limit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from connectors.clickhouse.backend import ClickHouseBackend, Row, validate_database_name
from suuupra.settings import PROJECT_ROOT

PANELS_DIR = PROJECT_ROOT / "infra" / "clickhouse" / "panels"

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_HEADER = re.compile(r"^--\s*(title|description):\s*(.*)$")


class PanelError(ValueError):
    """A panel that does not exist or cannot be rendered; the message says what is known or expected."""


@dataclass(frozen=True)
class Panel:
    name: str
    title: str
    description: str
    path: Path
    template: str

    def render(self, database: str, *, hours: int = 0, limit: int | None = None) -> str:
        if hours < 0:
            raise PanelError(f"hours must be 0 (all data) or positive, got {hours}")
        if limit is not None and limit < 1:
            raise PanelError(f"limit must be at least 1, got {limit}")
        sql = self.template.replace("{database}", validate_database_name(database)).replace("{hours}", str(hours))
        sql = sql.rstrip().removesuffix(";").rstrip()
        return f"{sql}\nLIMIT {limit}" if limit is not None else sql


def _parse_header(path: Path, text: str) -> tuple[str, str]:
    fields: dict[str, list[str]] = {}
    current: str | None = None
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped.startswith("--"):
            break
        match = _HEADER.match(stripped)
        if match:
            current = match.group(1)
            fields[current] = [match.group(2).strip()]
        elif current is not None and stripped[2:].strip():
            fields[current].append(stripped[2:].strip())
    if "title" not in fields or "description" not in fields:
        raise PanelError(f"{path} must start with '-- title: ...' and '-- description: ...' comment lines")
    return " ".join(fields["title"]), " ".join(fields["description"])


def load_panel(path: Path) -> Panel:
    name = path.stem
    if not _NAME.match(name):
        raise PanelError(f"panel file {path.name}: name it with lower-case letters, digits and underscores")
    text = path.read_text(encoding="utf-8")
    title, description = _parse_header(path, text)
    return Panel(name=name, title=title, description=description, path=path, template=text)


def load_panels(folder: Path = PANELS_DIR) -> dict[str, Panel]:
    """Every panel in the folder, by name, sorted by name."""
    return {path.stem: load_panel(path) for path in sorted(folder.glob("*.sql"))}


def get_panel(name: str, folder: Path = PANELS_DIR) -> Panel:
    panels = load_panels(folder)
    if name not in panels:
        known = ", ".join(panels) if panels else f"none: {folder} holds no .sql file"
        raise PanelError(f"unknown panel '{name}'; known panels: {known}")
    return panels[name]


def run_panel(
    backend: ClickHouseBackend,
    name: str,
    database: str,
    *,
    hours: int = 0,
    limit: int | None = None,
    folder: Path = PANELS_DIR,
) -> tuple[list[str], list[Row]]:
    """Runs a panel; returns its column names and rows (values as described in `connectors.clickhouse.backend`)."""
    sql = get_panel(name, folder).render(database, hours=hours, limit=limit)
    result = backend.query(sql)
    return result.columns, result.rows
