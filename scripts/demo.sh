#!/usr/bin/env bash
# The main command: bring the local platform up, send simulated traffic, run the analytics job on it, check its
# tables against an independent computation and show the dashboards; then the features and fraud jobs on the same
# traffic (a model trained first if none is saved) and a few fraud decisions with their reasons. Run it again: the job resumes from its
# consumer group's offsets and adds only the new traffic.
set -euo pipefail
cd "$(dirname "$0")/.."
suuupra=.venv/bin/suuupra
$suuupra platform up
$suuupra topics apply
$suuupra schemas register
$suuupra clickhouse migrate
$suuupra simulate --seed "${DEMO_SEED:-42}" --rate "${DEMO_RATE:-1000}" --duration "${DEMO_DURATION:-20}" --malformed 0.01
$suuupra summary
$suuupra jobs run analytics --bounded
# Every table against an independent computation from the same events (exit 1 on any difference).
$suuupra verify analytics
for panel in funnel revenue_by_method content_engagement sessions registrations late_events; do
  $suuupra query "$panel" --limit 8
done
# Fraud scoring (docs/features.md): a model trained once on a simulated history, then both jobs side by side.
$suuupra features apply
$suuupra fraud models >/dev/null 2>&1 || $suuupra fraud train --events "${DEMO_TRAIN_EVENTS:-60000}"
$suuupra fraud show
$suuupra jobs run features --bounded &
features=$!
$suuupra jobs run fraud --bounded
wait "$features"
for panel in fraud_decisions fraud_reasons; do
  $suuupra query "$panel" --limit 8
done
$suuupra fraud decisions --limit 5
echo "Live dashboards: .venv/bin/suuupra dashboard   (then open http://127.0.0.1:8050/)"
