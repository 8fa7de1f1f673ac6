#!/usr/bin/env bash
# The main command: bring the local platform up and run the pipeline on simulated traffic.
set -euo pipefail
cd "$(dirname "$0")/.."
suuupra=.venv/bin/suuupra
$suuupra platform up
$suuupra topics apply
$suuupra schemas register
$suuupra simulate --seed 42 --rate "${DEMO_RATE:-1000}" --duration "${DEMO_DURATION:-20}" --malformed 0.01
$suuupra summary
