"""The jobs the CLI can run or submit: name -> module with `build(env, settings)` and `main(argv)`."""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

JOBS = {"analytics": "jobs.analytics", "features": "jobs.features", "fraud": "jobs.fraud", "indexing": "jobs.indexing"}


class UnknownJobError(KeyError):
    def __str__(self) -> str:
        return f"unknown job '{self.args[0]}'; known jobs: {', '.join(sorted(JOBS))}"


def job_module(name: str) -> ModuleType:
    if name not in JOBS:
        raise UnknownJobError(name)
    return importlib.import_module(JOBS[name])


def job_file(name: str) -> Path:
    module = job_module(name)
    assert module.__file__ is not None
    return Path(module.__file__)
