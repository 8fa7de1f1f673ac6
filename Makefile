# `make demo` and `make test` are the two commands of the README; both install what is missing first.
.PHONY: install demo test lint

install:
	bash scripts/bootstrap.sh

demo: install
	bash scripts/demo.sh

lint:
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy

test: install lint
	.venv/bin/suuupra schemas check --no-registry --git-rev HEAD~1
	.venv/bin/pytest
