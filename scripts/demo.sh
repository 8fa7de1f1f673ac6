#!/usr/bin/env bash
# The main command: bring the local platform up, send simulated traffic, run the analytics job on it, check its
# tables against an independent computation and show the dashboards. Run it again: the job resumes from its
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
echo "Live dashboards: .venv/bin/suuupra dashboard   (then open http://127.0.0.1:8050/)"
