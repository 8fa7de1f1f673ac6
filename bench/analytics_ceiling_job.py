"""The analytics job writing raw_events alone: the same Kafka source, decoding, late rule and dead letters, none of
the aggregates. bench/analytics_e2e.py runs it on the backlog of part (a) to show what reading, decoding and writing
every event costs by itself, the ceiling the whole job's events/s are read against. Run like a job:

    .venv/bin/python bench/analytics_ceiling_job.py     # settings from SUUUPRA_* / SUUUPRA_CONFIG, as for every job
"""

from __future__ import annotations

import sys
from functools import partial

from jobs import analytics
from jobs.runtime import run_job

TABLES = ("raw_events",)


def main() -> None:
    run_job(
        analytics.JOB_NAME,
        partial(analytics.build, tables=TABLES),
        sys.argv[1:],
        c2_threshold_scale=analytics.C2_THRESHOLD_SCALE,
    )


if __name__ == "__main__":
    main()
