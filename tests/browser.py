"""The dashboard as a person sees it: served in a thread, rendered by headless Debian Chromium."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from html.parser import HTMLParser
from pathlib import Path

import pytest
from fastapi import FastAPI

from suuupra.dashboard.server import bind, make_server, url_of


@contextmanager
def serving(app: FastAPI) -> Iterator[str]:
    """The app served by uvicorn in a thread on a free port; yields its URL, stops it (should_exit) after."""
    sock = bind("127.0.0.1", 0)
    server = make_server(app)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 15
        while not server.started:
            assert thread.is_alive(), "the dashboard server thread died while starting"
            assert time.monotonic() < deadline, "the dashboard server did not start within 15 s"
            time.sleep(0.05)
        yield url_of(sock)
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()


def chromium(url: str, profile: Path, *extra: str) -> str:
    """Runs headless Chromium on the page; returns what it prints (the DOM after the scripts, with --dump-dom)."""
    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail("chromium is not installed: run scripts/bootstrap.sh as root (or apt-get install -y chromium)")
    command = [
        executable, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={profile}", "--virtual-time-budget=10000", *extra, url,
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)
    assert result.returncode == 0, f"chromium failed ({result.returncode}): {result.stderr[-3000:]}"
    return result.stdout


class DomReader(HTMLParser):
    """From a dumped DOM: the chart elements (attributes and text by panel), the table cells' text and the error
    banner."""

    def __init__(self) -> None:
        super().__init__()
        self.charts: dict[str, dict[str, str]] = {}
        self.chart_text: dict[str, str] = {}
        self.cells: list[str] = []
        self.banner_hidden = False
        self.banner_text = ""
        self.operations_loaded = False
        self._chart: str | None = None
        self._depth = 0  # open elements inside the current chart; none of them is a void element
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {key: value or "" for key, value in attrs}
        if self._chart is not None:
            self._depth += 1
        elif "data-panel" in attributes:
            self._chart = attributes["data-panel"]
            self._depth = 1
            self.charts[self._chart] = attributes
            self.chart_text[self._chart] = ""
        if attributes.get("id") == "operations-body":
            self.operations_loaded = attributes.get("data-loaded") == "true"
        if attributes.get("id") == "error":
            self.banner_hidden = "hidden" in attributes
            self._in = "error"
        elif tag == "td":
            self._in = "td"
            self.cells.append("")

    def handle_endtag(self, tag: str) -> None:
        if self._chart is not None:
            self._depth -= 1
            if self._depth == 0:
                self._chart = None
        if tag in ("td", "div"):
            self._in = None

    def handle_data(self, data: str) -> None:
        if self._chart is not None:
            self.chart_text[self._chart] += data
        if self._in == "td":
            self.cells[-1] += data
        elif self._in == "error":
            self.banner_text += data


def read_dom(html: str) -> DomReader:
    reader = DomReader()
    reader.feed(html)
    return reader
