"""A separate virtual environment for the Quix Streams peer of the analytics benchmark, and a runner for it.

quixstreams 3.28.1 requires confluent-kafka < 2.13 and pydantic < 2.14, which clash with the project's own venv, so
`bench/quix_peer.py` runs in `<root>/venv-quix` (by default `/work/main/.platform/venv-quix`, ignored by git) with
exactly the pinned packages below. Standard library only: importable from the project venv as `bench.quix_venv`.

    .venv/bin/python -m bench.quix_venv [--root .platform]          # create the venv (instant once stamped)
    .venv/bin/python -m bench.quix_venv -- --bootstrap ... --timeout-s 120   # and run the peer with these args
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

# clickhouse-driver: the version the project's venv runs against the ClickHouse 18.16 server.
REQUIREMENTS: tuple[str, ...] = ("quixstreams==3.28.1", "clickhouse-driver==0.2.11")
VENV_NAME = "venv-quix"
STAMP_NAME = ".suuupra-quix-stamp"
PEER_SCRIPT = Path(__file__).resolve().parent / "quix_peer.py"
DEFAULT_ROOT = Path(__file__).resolve().parent.parent / ".platform"


class QuixPeerError(RuntimeError):
    """The peer process failed or printed no JSON object; the message carries the end of its stderr."""


def _venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def _stamp_text() -> str:
    return "\n".join((f"python={sys.version.split()[0]}", *REQUIREMENTS)) + "\n"


def ensure_quix_venv(root: Path) -> Path:
    """Create `<root>/venv-quix` with the pinned requirements if it is missing or stale; return its python.

    A stamp file written after a successful install (naming the interpreter version and the pins) makes a second
    call instant. A venv left half-built by an interrupted install has no stamp and is installed into again.
    """
    venv = root / VENV_NAME
    python = _venv_python(venv)
    stamp = venv / STAMP_NAME
    wanted = _stamp_text()
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    root.mkdir(parents=True, exist_ok=True)
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *REQUIREMENTS],
        check=True,
    )
    stamp.write_text(wanted)
    return python


def run_quix_peer(python: Path, args: list[str], timeout_s: float) -> dict[str, object]:
    """Run `bench/quix_peer.py` with `args` under `python`; return the JSON object it prints on stdout.

    The peer's stderr (its log) is passed through to ours. Raises `QuixPeerError` if it exits non-zero, prints no
    JSON object, or outlives `timeout_s` (it is then killed).
    """
    command = [str(python), str(PEER_SCRIPT), *args]
    try:
        completed = subprocess.run(command, stdout=subprocess.PIPE, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as exc:
        raise QuixPeerError(f"quix peer still running after {timeout_s:.0f} s: killed") from exc
    if completed.returncode != 0:
        raise QuixPeerError(f"quix peer exited with {completed.returncode}")
    lines = [line for line in completed.stdout.splitlines() if line.strip()]
    if not lines:
        raise QuixPeerError("quix peer printed nothing on stdout")
    try:
        result = json.loads(lines[-1])
    except json.JSONDecodeError as exc:
        raise QuixPeerError(f"quix peer's last stdout line is not JSON: {lines[-1][:200]!r}") from exc
    if not isinstance(result, dict):
        raise QuixPeerError(f"quix peer printed {type(result).__name__}, not a JSON object")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="folder that holds venv-quix")
    parser.add_argument("--run-timeout-s", type=float, default=3600.0, help="kill the peer after this long")
    parser.add_argument("peer_args", nargs=argparse.REMAINDER, help="after --: arguments for quix_peer.py")
    options = parser.parse_args(argv)
    started = time.monotonic()
    python = ensure_quix_venv(options.root)
    print(f"quix venv ready in {time.monotonic() - started:.1f} s: {python}", file=sys.stderr)
    peer_args: list[str] = list(options.peer_args)
    if peer_args[:1] == ["--"]:
        peer_args = peer_args[1:]
    if peer_args:
        print(json.dumps(run_quix_peer(python, peer_args, options.run_timeout_s)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
