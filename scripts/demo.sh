#!/usr/bin/env bash
# The main command: bring the local platform up, send simulated traffic, run the analytics job on it, check its
# tables against an independent computation and show the dashboards; then the features and fraud jobs on the same
# traffic (a model trained first if none is saved) and a few fraud decisions with their reasons; then index the
# content and the views (search engine) and ask it a search, a "more like this" and an "also watched". It needs an
# empty platform: the checks compare each job with every event in Kafka, and a bounded run does not carry the state
# of an earlier one, so a second run stops at `simulate --require-empty` and says to `suuupra platform reset` first.
set -euo pipefail
cd "$(dirname "$0")/.."
suuupra=.venv/bin/suuupra
$suuupra platform up
$suuupra topics apply
$suuupra schemas register
$suuupra clickhouse migrate
$suuupra simulate --require-empty --seed "${DEMO_SEED:-42}" --rate "${DEMO_RATE:-1000}" --duration "${DEMO_DURATION:-20}" --malformed 0.01
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

# Content indexing: fit the embedder on the published catalogue, index it and the co-watches, check both against an
# independent computation, and ask.
$suuupra index fit
$suuupra jobs run indexing --bounded
$suuupra verify search
$suuupra search "python" --limit 5
$suuupra search "" --category exam-prep --max-price 600000 --limit 3
# An introduction lesson (the free previews most learners watch) that has co-watchers, for both questions.
item=""
for candidate in $($suuupra search "introduction" --limit 10 --ids); do
  if [ -n "$($suuupra also-watched "$candidate" --limit 1 --ids)" ]; then item=$candidate; break; fi
done
item=${item:-$($suuupra search "python" --limit 1 --ids)}
$suuupra similar "$item" --limit 5
$suuupra also-watched "$item" --limit 5
echo "Live dashboards: .venv/bin/suuupra dashboard   (then open http://127.0.0.1:8050/)"
