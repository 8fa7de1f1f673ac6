"""The dashboard web server: one page that charts every panel of `suuupra.clickhouse.panels` and refreshes itself.

Routes:

- ``GET /``: the page. Charts are inline SVG drawn by the page's own script; it loads nothing from elsewhere (the
  machines it runs on may have no internet), and its Content-Security-Policy forbids it to.
- ``GET /api/panels``: the panels, as a list of ``{name, title, description}``.
- ``GET /api/panels/<name>?hours=N&limit=M``: ``columns``, ``kinds`` and ``rows`` of one panel. Datetimes are ISO-8601
  (UTC), Decimals and integers beyond 2**53 are strings so money stays exact in JavaScript; ClickHouse unreachable
  answers 503, any other ClickHouse failure 500, an unknown panel 404 with the known ones; ``detail`` says why.
- ``GET /healthz``: the server is alive (always 200); ``clickhouse`` in the body says whether ClickHouse answers.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import logging
import math
import re
import socket
from collections.abc import Callable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import uvicorn
from fastapi import FastAPI, Query
from fastapi.responses import HTMLResponse, JSONResponse, Response

from connectors.clickhouse.backend import ClickHouseBackend, ClickHouseError
from suuupra.clickhouse.migrate import server_backend
from suuupra.clickhouse.panels import PANELS_DIR, PanelError, load_panels, run_panel
from suuupra.settings import Settings
from suuupra.status import platform_report, prometheus_text

DEFAULT_LIMIT = 5_000
MAX_LIMIT = 100_000
# JavaScript numbers are doubles: integers past this lose digits in JSON.parse, so they travel as strings.
_MAX_SAFE_INTEGER = 2**53 - 1

BackendFactory = Callable[[], ClickHouseBackend]


class DashboardError(RuntimeError):
    """The dashboard cannot start as asked; the message says what to change."""


# --- JSON --------------------------------------------------------------------------------------------------------
def to_json_value(value: Any) -> Any:
    """One ClickHouse value (as the backends return it) in a form JSON carries without losing anything."""
    if value is None or isinstance(value, str | bool):
        return value
    if isinstance(value, int):
        return value if abs(value) <= _MAX_SAFE_INTEGER else str(value)
    if isinstance(value, float):
        # JSON has no NaN or infinity (the browser's JSON.parse rejects them).
        return value if math.isfinite(value) else None
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [to_json_value(item) for item in value]
    return str(value)


def value_kind(value: Any) -> str:
    """How the page treats a column: `time` and `date` on an x axis, `number`/`decimal` as values, `text` as labels."""
    if isinstance(value, dt.datetime):
        return "time"
    if isinstance(value, dt.date):
        return "date"
    if isinstance(value, Decimal):
        return "decimal"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "number"
    return "text"


def column_kinds(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    # The backends do not say the types through run_panel; the first non-NULL value of each column does.
    kinds = []
    for index in range(len(columns)):
        sample = next((row[index] for row in rows if row[index] is not None), None)
        kinds.append(value_kind(sample) if sample is not None else "text")
    return kinds


PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _error(status: int, detail: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"detail": detail, **extra}, status_code=status, headers={"Cache-Control": "no-store"})


# --- the app -----------------------------------------------------------------------------------------------------
def create_app(
    settings: Settings,
    *,
    refresh_s: float = 5.0,
    hours: int = 0,
    folder: Path = PANELS_DIR,
    connect: BackendFactory | None = None,
) -> FastAPI:
    """The dashboard for the database in `settings.clickhouse`; `hours` is the page's initial time range (0: all)."""
    if refresh_s <= 0:
        raise DashboardError(f"refresh must be a positive number of seconds, got {refresh_s}")
    if hours < 0:
        raise DashboardError(f"hours must be 0 (all data) or positive, got {hours}")
    database = settings.clickhouse.database
    initial_hours = hours  # the route's own `hours` parameter shadows this one

    def default_connect() -> ClickHouseBackend:
        # Short timeouts: the page asks again every few seconds, a hung request only delays the error it should show.
        # Through the reader: a dashboard has no business writing.
        return server_backend(settings.clickhouse.as_reader(), connect_timeout_s=3.0, send_receive_timeout_s=30.0)

    new_backend = connect or default_connect
    app = FastAPI(title="Suuupra Streams dashboard", docs_url=None, redoc_url=None, openapi_url=None)
    page = render_page(
        {
            "refresh_ms": round(refresh_s * 1000),
            "hours": hours,
            "database": database,
            "clickhouse": f"{settings.clickhouse.host}:{settings.clickhouse.port}",
        }
    )

    @app.get("/", response_class=HTMLResponse)
    def index() -> HTMLResponse:
        headers = {"Content-Security-Policy": CONTENT_SECURITY_POLICY, "Cache-Control": "no-store"}
        return HTMLResponse(page, headers=headers)

    @app.get("/favicon.ico")
    def favicon() -> Response:
        # Browsers ask for it on their own; an empty answer keeps the 404 out of the console and the logs.
        return Response(status_code=204)

    @app.get("/healthz")
    def healthz() -> JSONResponse:
        # Always 200: the dashboard itself is fine when ClickHouse is not (the page says so); restarting it won't help.
        status = "up"
        try:
            with new_backend() as backend:
                backend.execute("SELECT 1")
        except ClickHouseError as error:
            status = str(error)
        return JSONResponse({"status": "ok", "database": database, "clickhouse": status})

    @app.get("/api/operations")
    def operations() -> JSONResponse:
        """The operations panel: what `suuupra status --json` prints (components, jobs, lag, dead letters, payments
        waiting on a decision, and what could not be read)."""
        return JSONResponse(platform_report(settings).as_dict(), headers={"Cache-Control": "no-store"})

    @app.get("/metrics")
    def metrics() -> Response:
        """The same figures for Prometheus to scrape (jobs, lag, dead letters, components, waiting payments)."""
        return Response(prometheus_text(platform_report(settings)), media_type=PROMETHEUS_CONTENT_TYPE)

    @app.get("/api/panels")
    def list_panels() -> JSONResponse:
        try:
            panels = load_panels(folder)
        except PanelError as error:
            return _error(500, str(error))
        return JSONResponse(
            [{"name": p.name, "title": p.title, "description": p.description} for p in panels.values()],
            headers={"Cache-Control": "no-store"},
        )

    @app.get("/api/panels/{name}")
    def panel_data(
        name: str,
        hours: Annotated[int | None, Query(ge=0, description="Last N hours of data; 0: all.")] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="At most this many rows.")] = DEFAULT_LIMIT,
    ) -> JSONResponse:
        scope = initial_hours if hours is None else hours
        try:
            panels = load_panels(folder)
        except PanelError as error:
            return _error(500, str(error))
        if name not in panels:
            known = list(panels)
            return _error(404, f"unknown panel '{name}'; known panels: {', '.join(known) or 'none'}", known=known)
        panel = panels[name]
        try:
            with new_backend() as backend:
                # One more row than shown, so the page can tell the panel was cut off.
                columns, rows = run_panel(backend, name, database, hours=scope, limit=limit + 1, folder=folder)
        except ClickHouseError as error:
            if error.retryable:
                return _error(503, str(error))
            return _error(
                500,
                f"{error}. Are the tables there? Run `suuupra clickhouse migrate` (database {database}).",
            )
        except (PanelError, ValueError) as error:
            return _error(500, str(error))
        truncated = len(rows) > limit
        rows = rows[:limit]
        return JSONResponse(
            {
                "name": panel.name,
                "title": panel.title,
                "description": panel.description,
                "database": database,
                "hours": scope,
                "limit": limit,
                "truncated": truncated,
                "columns": columns,
                "kinds": column_kinds(columns, rows),
                "rows": [[to_json_value(value) for value in row] for row in rows],
            },
            headers={"Cache-Control": "no-store"},
        )

    return app


# --- running -----------------------------------------------------------------------------------------------------
def bind(host: str, port: int) -> socket.socket:
    """A listening socket for the server (port 0: any free port). Bound here, not by uvicorn, so a busy port is a
    clear error before anything starts, and a caller asking for port 0 learns the port without a race."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as error:
        raise DashboardError(f"cannot listen on host '{host}': {error.strerror}") from error
    family, kind, protocol, _, address = infos[0]
    sock = socket.socket(family, kind, protocol)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as error:
        sock.close()
        raise DashboardError(
            f"cannot listen on {host}:{port}: {error.strerror or error}; choose another port with --port"
        ) from error
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def make_server(app: FastAPI) -> uvicorn.Server:
    # No access log: the page polls every panel every few seconds, which would bury everything else.
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    return uvicorn.Server(config)


def serve(settings: Settings, sock: socket.socket, *, refresh_s: float = 5.0, hours: int = 0) -> None:
    """Serves the dashboard on an already bound socket until interrupted (Ctrl+C)."""
    # The driver logs every failed connect with a traceback; the page and the API already say what went wrong.
    logging.getLogger("clickhouse_driver").setLevel(logging.CRITICAL)
    server = make_server(create_app(settings, refresh_s=refresh_s, hours=hours))
    server.run(sockets=[sock])


# --- the page ----------------------------------------------------------------------------------------------------
_STYLE = """
:root { --ink: #1f2937; --muted: #6b7280; --line: #e5e7eb; --card: #ffffff; --bg: #f3f4f6; --accent: #2563eb; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
  color: var(--ink); background: var(--bg); }
header { display: flex; flex-wrap: wrap; align-items: baseline; gap: 6px 18px; padding: 14px 20px;
  background: #111827; color: #f9fafb; }
header h1 { margin: 0; font-size: 18px; font-weight: 600; }
header .meta { color: #d1d5db; font-size: 13px; }
header label { margin-left: auto; font-size: 13px; color: #d1d5db; }
header select { margin-left: 6px; font: inherit; }
#status::before { content: ""; display: inline-block; width: 9px; height: 9px; margin-right: 6px; border-radius: 50%;
  background: #9ca3af; }
#status.ok::before { background: #22c55e; }
#status.down::before { background: #ef4444; }
#error { margin: 14px 20px 0; padding: 10px 14px; border: 1px solid #fca5a5; border-radius: 6px; background: #fef2f2;
  color: #991b1b; white-space: pre-wrap; }
#error[hidden] { display: none; }
main { display: grid; grid-template-columns: repeat(auto-fill, minmax(620px, 1fr)); gap: 16px; padding: 16px 20px; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 14px 16px;
  min-width: 0; }
.card.stale { opacity: 0.6; }
.card h2 { margin: 0; font-size: 16px; }
.card .description { margin: 4px 0 8px; color: var(--muted); font-size: 12px; }
.card .panel-error { color: #b91c1c; font-size: 12px; margin: 4px 0; }
.card .panel-error:empty { display: none; }
.chart { min-height: 60px; }
.chart svg { display: block; width: 100%; height: auto; }
.chart .empty { padding: 28px 0; text-align: center; color: var(--muted); }
.chart-caption { color: var(--muted); font-size: 12px; margin: 2px 0 4px; }
.legend { display: flex; flex-wrap: wrap; gap: 4px 14px; font-size: 12px; color: var(--muted); margin: 2px 0 6px; }
.legend .swatch { display: inline-block; width: 10px; height: 10px; margin-right: 5px; border-radius: 2px; }
.axis text, .bar-label, .bar-value { font-size: 11px; fill: #4b5563; }
.grid line { stroke: var(--line); }
.table-wrap { max-height: 190px; overflow: auto; border-top: 1px solid var(--line); margin-top: 8px; }
table { border-collapse: collapse; width: 100%; font-size: 12px; font-variant-numeric: tabular-nums; }
th, td { padding: 3px 8px; border-bottom: 1px solid var(--line); text-align: left; white-space: nowrap; }
th { position: sticky; top: 0; background: #f9fafb; font-weight: 600; }
td.num { text-align: right; }
.table-wrap:empty { display: none; }
.rows-note { color: var(--muted); font-size: 11px; margin-top: 4px; }
"""

_SCRIPT = r"""
"use strict";
const config = JSON.parse(document.getElementById("config").textContent);
const SVG_NS = "http://www.w3.org/2000/svg";
const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4b5563"];
const TABLE_ROWS = 8;
const MAX_BARS = 10;
const MAX_SERIES = 6;
const state = { hours: config.hours, panels: [], cards: new Map(), timer: null, running: false };

function el(tag, attrs, text) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

const isNumeric = (kind) => kind === "number" || kind === "decimal";
const isTime = (kind) => kind === "time" || kind === "date";

function toNumber(value) {
  // Decimals and very large integers arrive as strings (exact for the table); the chart only needs their size.
  if (value === null || value === undefined || value === "") return null;
  const number = typeof value === "number" ? value : Number(value);
  return Number.isFinite(number) ? number : null;
}

function formatNumber(value) {
  const abs = Math.abs(value);
  if (abs >= 1e9) return (value / 1e9).toFixed(abs >= 1e10 ? 0 : 1) + "G";
  if (abs >= 1e6) return (value / 1e6).toFixed(abs >= 1e7 ? 0 : 1) + "M";
  if (abs >= 1e4) return (value / 1e3).toFixed(abs >= 1e5 ? 0 : 1) + "k";
  if (Number.isInteger(value)) return String(value);
  return String(Number(value.toPrecision(3)));
}

function formatTime(ms, spanMs) {
  // As precise as the span needs: seconds for a few minutes of data, the day once it spans more than one.
  const iso = new Date(ms).toISOString();
  if (spanMs < 600000) return iso.slice(11, 19);
  if (spanMs < 86400000) return iso.slice(11, 16);
  return iso.slice(5, 10) + " " + iso.slice(11, 16);
}

function formatCell(value, kind) {
  if (value === null || value === undefined) return "";
  if (kind === "time" && typeof value === "string") {
    return value.replace("T", " ").replace(/(\.\d+)?(Z|[+-]\d\d:\d\d)$/, "");
  }
  if (Array.isArray(value)) return JSON.stringify(value);
  // Strings (money among them) are shown exactly as the panel gives them.
  return String(value);
}

function niceTicks(low, high, count) {
  if (high === low) high = low + 1;
  const raw = (high - low) / count;
  const magnitude = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 2.5, 5, 10].map((f) => f * magnitude).find((s) => s >= raw);
  const first = Math.floor(low / step) * step;
  const ticks = [];
  for (let tick = first; tick <= high + step * 1e-9; tick += step) ticks.push(Number(tick.toPrecision(12)));
  if (ticks[ticks.length - 1] < high) ticks.push(ticks[ticks.length - 1] + step);
  return ticks;
}

function chartPlan(data) {
  const kinds = data.kinds;
  const valueIndex = kinds.findIndex(isNumeric);
  const textIndex = kinds.findIndex((kind) => kind === "text");
  if (valueIndex < 0) return null;
  if (isTime(kinds[0])) return { type: "line", timeIndex: 0, valueIndex, seriesIndex: textIndex };
  return { type: "bar", labelIndex: textIndex, valueIndex };
}

function lineSeries(data, plan) {
  const times = data.rows.map((row) => Date.parse(row[plan.timeIndex]));
  // Several rows per time (one per payment method, say): one line per value of the first text column.
  const split = plan.seriesIndex >= 0 && new Set(times).size < times.length;
  const byName = new Map();
  data.rows.forEach((row, i) => {
    const value = toNumber(row[plan.valueIndex]);
    if (Number.isNaN(times[i]) || value === null) return;
    const name = split ? String(row[plan.seriesIndex]) : data.columns[plan.valueIndex];
    if (!byName.has(name)) byName.set(name, new Map());
    const points = byName.get(name);
    points.set(times[i], (points.get(times[i]) || 0) + value);
  });
  let series = [...byName.entries()].map(([name, points]) => ({
    name,
    total: [...points.values()].reduce((a, b) => a + b, 0),
    points: [...points.entries()].sort((a, b) => a[0] - b[0]),
  }));
  series.sort((a, b) => b.total - a.total);
  if (series.length > MAX_SERIES) {
    const other = new Map();
    for (const s of series.slice(MAX_SERIES - 1)) {
      for (const [t, v] of s.points) other.set(t, (other.get(t) || 0) + v);
    }
    series = series.slice(0, MAX_SERIES - 1);
    series.push({ name: "other", total: 0, points: [...other.entries()].sort((a, b) => a[0] - b[0]) });
  }
  return { series, split };
}

function drawLine(data, plan) {
  const { series, split } = lineSeries(data, plan);
  const W = 640, H = 210, left = 52, right = 14, top = 10, bottom = 26;
  const all = series.flatMap((s) => s.points);
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img" });
  if (all.length === 0) return { node: root, points: 0, series };
  const tMin = Math.min(...all.map((p) => p[0])), tMax = Math.max(...all.map((p) => p[0]));
  const vMin = Math.min(0, ...all.map((p) => p[1])), vMax = Math.max(0, ...all.map((p) => p[1]));
  const ticks = niceTicks(vMin, vMax, 4);
  const yLow = ticks[0], yHigh = ticks[ticks.length - 1];
  const x = (t) => (tMax === tMin ? (left + W - right) / 2 : left + ((t - tMin) / (tMax - tMin)) * (W - left - right));
  const y = (v) => top + (1 - (v - yLow) / (yHigh - yLow)) * (H - top - bottom);
  const grid = svg("g", { class: "grid axis" });
  for (const tick of ticks) {
    grid.append(svg("line", { x1: left, x2: W - right, y1: y(tick), y2: y(tick) }));
    grid.append(svg("text", { x: left - 6, y: y(tick) + 4, "text-anchor": "end" }, formatNumber(tick)));
  }
  // Fewer labels when the points are few, so no two labels show the same time.
  const labels = Math.max(1, Math.min(5, new Set(all.map((p) => p[0])).size));
  for (let i = 0; i < labels; i++) {
    const t = labels === 1 ? tMin : tMin + ((tMax - tMin) * i) / (labels - 1);
    const anchor = labels === 1 ? "middle" : i === 0 ? "start" : i === labels - 1 ? "end" : "middle";
    grid.append(svg("text", { x: x(t), y: H - 8, "text-anchor": anchor }, formatTime(t, tMax - tMin)));
  }
  root.append(grid);
  const dots = all.length <= 120;
  series.forEach((s, index) => {
    const color = COLORS[index % COLORS.length];
    const coords = s.points.map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
    root.append(svg("polyline", { points: coords, fill: "none", stroke: color, "stroke-width": 2,
      "stroke-linejoin": "round" }));
    if (dots || s.points.length === 1) {
      for (const [t, v] of s.points) {
        const dot = svg("circle", { cx: x(t).toFixed(1), cy: y(v).toFixed(1), r: 2.8, fill: color });
        dot.append(svg("title", {}, `${s.name} ${new Date(t).toISOString().slice(0, 16).replace("T", " ")}: ${v}`));
        root.append(dot);
      }
    }
  });
  const caption = split
    ? `${data.columns[plan.valueIndex]} per ${data.columns[plan.seriesIndex]} over ${data.columns[0]} (UTC)`
    : `${data.columns[plan.valueIndex]} over ${data.columns[0]} (UTC)`;
  return { node: root, points: all.length, series: split ? series : [], caption };
}

function barLabels(data, plan) {
  if (plan.labelIndex < 0) return data.rows.map((row, i) => `row ${i + 1}`);
  // The same course in two currencies, say: add the next text columns until the labels tell the bars apart.
  const textColumns = data.kinds.map((kind, i) => i).filter((i) => i >= plan.labelIndex && data.kinds[i] === "text");
  let labels = [];
  for (let used = 1; used <= textColumns.length; used++) {
    labels = data.rows.map((row) => textColumns.slice(0, used).map((i) => String(row[i] ?? "")).join(" · "));
    if (new Set(labels).size === labels.length) break;
  }
  return labels;
}

function drawBars(data, plan) {
  const labels = barLabels(data, plan);
  const rows = data.rows
    .map((row, i) => ({ label: labels[i], value: toNumber(row[plan.valueIndex]),
      shown: formatCell(row[plan.valueIndex], data.kinds[plan.valueIndex]) }))
    .filter((bar) => bar.value !== null)
    .slice(0, MAX_BARS);
  const W = 640, barHeight = 18, gap = 6, top = 6, labelWidth = 190, valueWidth = 70;
  const H = top * 2 + rows.length * (barHeight + gap);
  const root = svg("svg", { viewBox: `0 0 ${W} ${Math.max(H, 30)}`, role: "img" });
  if (rows.length === 0) return { node: root, points: 0 };
  const vMin = Math.min(0, ...rows.map((b) => b.value)), vMax = Math.max(0, ...rows.map((b) => b.value));
  const span = vMax - vMin || 1;
  const plotLeft = labelWidth + 8, plotWidth = W - plotLeft - valueWidth;
  const x = (v) => plotLeft + ((v - vMin) / span) * plotWidth;
  rows.forEach((bar, i) => {
    const yTop = top + i * (barHeight + gap);
    const label = bar.label.length > 28 ? bar.label.slice(0, 27) + "…" : bar.label;
    const baseline = yTop + barHeight - 5;
    const text = svg("text", { class: "bar-label", x: labelWidth, y: baseline, "text-anchor": "end" }, label);
    text.append(svg("title", {}, bar.label));
    root.append(text);
    const x0 = x(Math.min(0, bar.value)), x1 = x(Math.max(0, bar.value));
    const rect = svg("rect", { x: x0.toFixed(1), y: yTop, width: Math.max(1, x1 - x0).toFixed(1), height: barHeight,
      rx: 2, fill: bar.value < 0 ? COLORS[1] : COLORS[0] });
    rect.append(svg("title", {}, `${bar.label}: ${bar.shown}`));
    root.append(rect);
    root.append(svg("text", { class: "bar-value", x: x1 + 5, y: baseline }, bar.shown));
  });
  root.append(svg("line", { x1: x(0), x2: x(0), y1: 0, y2: H, stroke: "#9ca3af" }));
  const by = plan.labelIndex >= 0 ? ` by ${data.columns[plan.labelIndex]}` : "";
  const more = data.rows.length > rows.length ? ` (first ${rows.length} of ${data.rows.length})` : "";
  return { node: root, points: rows.length, caption: `${data.columns[plan.valueIndex]}${by}${more}` };
}

function renderChart(card, data) {
  const chart = card.chart;
  chart.replaceChildren();
  card.legend.replaceChildren();
  card.caption.textContent = "";
  const plan = data.rows.length ? chartPlan(data) : null;
  let drawn = { points: 0 };
  if (plan) drawn = plan.type === "line" ? drawLine(data, plan) : drawBars(data, plan);
  chart.dataset.chart = plan && drawn.points ? plan.type : "none";
  chart.dataset.points = String(drawn.points);
  if (!drawn.points) {
    chart.append(el("div", { class: "empty" }, data.rows.length ? "nothing to chart" : "no data yet"));
    return;
  }
  drawn.node.setAttribute("aria-label", `${card.panel.title}: ${drawn.caption}`);
  chart.append(drawn.node);
  card.caption.textContent = drawn.caption;
  (drawn.series || []).forEach((s, index) => {
    const item = el("span", {}, s.name);
    const swatch = el("span", { class: "swatch" });
    swatch.style.background = COLORS[index % COLORS.length];
    item.prepend(swatch);
    card.legend.append(item);
  });
}

function renderTable(card, data) {
  card.table.replaceChildren();
  card.note.textContent = "";
  if (!data.rows.length) return;
  const table = el("table");
  const head = el("tr");
  data.columns.forEach((column) => head.append(el("th", {}, column)));
  const thead = el("thead");
  thead.append(head);
  table.append(thead);
  const body = el("tbody");
  for (const row of data.rows.slice(0, TABLE_ROWS)) {
    const tr = el("tr");
    row.forEach((value, i) => {
      const kind = data.kinds[i];
      tr.append(el("td", isNumeric(kind) ? { class: "num" } : {}, formatCell(value, kind)));
    });
    body.append(tr);
  }
  table.append(body);
  card.table.append(table);
  const total = data.truncated ? `more than ${data.rows.length}` : String(data.rows.length);
  card.note.textContent = `${Math.min(TABLE_ROWS, data.rows.length)} of ${total} row(s)`;
}

function makeCard(panel) {
  const section = el("section", { class: "card", id: `panel-${panel.name}` });
  section.append(el("h2", {}, panel.title));
  section.append(el("p", { class: "description" }, panel.description));
  const error = el("p", { class: "panel-error", role: "alert" });
  const caption = el("div", { class: "chart-caption" });
  const chart = el("div", { class: "chart", "data-panel": panel.name, "data-points": "0", "data-chart": "none" });
  chart.append(el("div", { class: "empty" }, "loading…"));
  const legend = el("div", { class: "legend" });
  const table = el("div", { class: "table-wrap" });
  const note = el("div", { class: "rows-note" });
  section.append(error, caption, chart, legend, table, note);
  document.getElementById("panels").append(section);
  return { panel, section, error, caption, chart, legend, table, note, loaded: false };
}

async function fetchJson(url) {
  let response;
  try {
    response = await fetch(url, { cache: "no-store" });
  } catch (error) {
    const detail = `the dashboard server at ${location.host} does not answer (${error.message})`;
    return { ok: false, status: 0, detail };
  }
  let body = null;
  try {
    body = await response.json();
  } catch (error) {
    body = null;
  }
  if (!response.ok) {
    const detail = body && body.detail ? String(body.detail) : `HTTP ${response.status} ${response.statusText}`;
    return { ok: false, status: response.status, detail };
  }
  return { ok: true, status: response.status, body };
}

async function loadPanel(card) {
  const result = await fetchJson(`/api/panels/${encodeURIComponent(card.panel.name)}?hours=${state.hours}`);
  if (!result.ok) {
    // Keep the last chart, greyed out: a short outage should not blank the whole dashboard.
    card.section.classList.add("stale");
    // ClickHouse (or this server) being down is said once, in the banner; other failures are this panel's own.
    const down = result.status === 503 || result.status === 0;
    card.error.textContent = down ? "not updated: see the error above" : result.detail;
    if (!card.loaded) card.chart.replaceChildren(el("div", { class: "empty" }, "not available"));
    return result;
  }
  card.section.classList.remove("stale");
  card.error.textContent = "";
  card.loaded = true;
  renderChart(card, result.body);
  renderTable(card, result.body);
  return result;
}

function showErrors(results) {
  const banner = document.getElementById("error");
  const status = document.getElementById("status");
  const failed = results.filter((r) => !r.ok);
  if (!failed.length) {
    banner.hidden = true;
    banner.textContent = "";
    status.className = "ok";
    status.textContent = `updated ${new Date().toISOString().slice(11, 19)} UTC`;
    return;
  }
  const messages = [...new Set(failed.map((r) => r.detail))];
  const unavailable = failed.some((r) => r.status === 503 || r.status === 0);
  const heading = unavailable ? "ClickHouse is unavailable" : `${failed.length} panel(s) failed`;
  banner.textContent = `${heading}: ${messages.join("\n")}`;
  banner.hidden = false;
  status.className = "down";
  const now = new Date().toISOString().slice(11, 19);
  status.textContent = `error at ${now} UTC, retrying every ${config.refresh_ms / 1000} s`;
}

function opsTable(title, columns, rows) {
  const wrap = el("div", { class: "table-wrap ops-table" });
  wrap.append(el("h3", {}, title));
  if (!rows.length) {
    wrap.append(el("p", { class: "empty" }, "none"));
    return wrap;
  }
  const table = el("table", {});
  const head = el("tr", {});
  for (const column of columns) head.append(el("th", {}, column));
  table.append(head);
  for (const row of rows) {
    const line = el("tr", {});
    for (const value of row) line.append(el("td", {}, value === null || value === undefined ? "-" : String(value)));
    table.append(line);
  }
  wrap.append(table);
  return wrap;
}

function age(seconds) {
  if (seconds === null || seconds === undefined) return "none yet";
  return seconds < 120 ? `${Math.round(seconds)} s ago` : `${Math.round(seconds / 60)} min ago`;
}

// The operations panel: `suuupra status` on the page (components, jobs, lag, dead letters, waiting payments).
async function loadOperations() {
  const body = document.getElementById("operations-body");
  const result = await fetchJson("/api/operations");
  if (!result.ok) {
    document.getElementById("operations").classList.add("stale");
    document.getElementById("operations-error").textContent = `not updated: ${result.detail}`;
    return;
  }
  const report = result.body;
  document.getElementById("operations").classList.remove("stale");
  document.getElementById("operations-error").textContent = report.problems.join("\n");
  const lagByGroup = new Map();
  for (const entry of report.lag) {
    const key = `${entry.group}\u0000${entry.topic}`;
    lagByGroup.set(key, (lagByGroup.get(key) || 0) + entry.lag);
  }
  const waiting = report.pending_payments;
  body.replaceChildren(
    opsTable("components", ["component", "state", "detail"],
      report.components.map((c) => [c.name, c.ok ? "healthy" : "DOWN", c.detail])),
    opsTable("jobs", ["job", "where", "state", "restarts", "last checkpoint", "last failure"],
      report.jobs.map((j) => [j.name, j.where, j.state, j.restarts, age(j.last_checkpoint_age_s), j.last_failure])),
    opsTable("consumer lag", ["group", "topic", "records behind"],
      [...lagByGroup.entries()].filter(([, lag]) => lag > 0)
        .map(([key, lag]) => [...key.split("\u0000"), lag.toLocaleString("en")])),
    opsTable("dead letters", ["failed by", "reason", "records"],
      report.dead_letters.map((d) => [d.failed_by, d.reason, d.records])),
    opsTable("payments waiting on a fraud decision", ["count", "oldest"],
      waiting ? [[waiting.count, waiting.oldest_age_s === null ? "-" : `${Math.round(waiting.oldest_age_s)} s`]] : []),
  );
  body.setAttribute("data-loaded", "true");
}

async function refresh() {
  clearTimeout(state.timer);
  if (state.running) return;
  state.running = true;
  try {
    if (!state.panels.length) {
      const list = await fetchJson("/api/panels");
      if (!list.ok) {
        showErrors([list]);
        return;
      }
      state.panels = list.body;
      for (const panel of state.panels) state.cards.set(panel.name, makeCard(panel));
      if (!state.panels.length) document.getElementById("panels").append(el("p", {}, "no panels defined"));
    }
    const operations = loadOperations();
    showErrors(await Promise.all([...state.cards.values()].map(loadPanel)));
    await operations;
  } finally {
    state.running = false;
    state.timer = setTimeout(refresh, config.refresh_ms);
  }
}

function setup() {
  document.getElementById("database").textContent = `${config.database} on ${config.clickhouse}`;
  document.getElementById("every").textContent = `refresh every ${config.refresh_ms / 1000} s`;
  const select = document.getElementById("hours");
  const choices = [0, 1, 6, 24, 168];
  if (!choices.includes(config.hours)) choices.push(config.hours);
  for (const hours of choices.sort((a, b) => a - b)) {
    const option = el("option", { value: hours }, hours ? `last ${hours} h of data` : "all data");
    if (hours === config.hours) option.selected = true;
    select.append(option);
  }
  select.addEventListener("change", () => {
    state.hours = Number(select.value);
    refresh();
  });
  refresh();
}

setup();
"""

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Suuupra Streams dashboard</title>
<style>{style}</style>
</head>
<body>
<header>
  <h1>Suuupra Streams</h1>
  <span class="meta" id="database"></span>
  <span class="meta" id="every"></span>
  <span class="meta" id="status">loading</span>
  <label>range <select id="hours"></select></label>
</header>
<div id="error" role="alert" hidden></div>
<section class="card" id="operations">
  <h2>Operations</h2>
  <p class="description">Components, jobs (restarts, last checkpoint), consumer lag, dead letters and payments
  waiting on a fraud decision: what <code>suuupra status</code> shows.</p>
  <p class="panel-error" id="operations-error" role="alert"></p>
  <div id="operations-body" data-loaded="false"><div class="empty">loading…</div></div>
</section>
<main id="panels"></main>
<script id="config" type="application/json">{config}</script>
<script>{script}</script>
</body>
</html>
"""


_PLACEHOLDER = re.compile(r"\{(style|script|config)\}")


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"


# Only this page's own script and style may run, and it may only talk to this server: nothing external loads even if
# a panel's data held markup (the script writes data as text, never as HTML, too).
CONTENT_SECURITY_POLICY = (
    f"default-src 'none'; script-src {_csp_hash(_SCRIPT)}; style-src {_csp_hash(_STYLE)}; connect-src 'self'; "
    "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


def render_page(config: dict[str, Any]) -> str:
    # `<` escaped so no value can close the script element it sits in.
    data = json.dumps(config).replace("<", "\\u003c")
    parts = {"style": _STYLE, "script": _SCRIPT, "config": data}
    # One pass, so nothing inserted (the script's own `${...}` among it) is taken for a placeholder.
    return _PLACEHOLDER.sub(lambda match: parts[match.group(1)], _PAGE)
