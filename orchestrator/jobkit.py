"""The name jobs import (``from orchestrator.jobkit import step, detail, report_progress``; the command line
``python -m orchestrator.jobkit [--detail TEXT] [--done N] [--total N] PERCENT STEP...``).

The helper itself is :mod:`orchestrator.job.jobkit`, one standard-library-only file a job may copy.
"""

from __future__ import annotations

import sys

from orchestrator.job.jobkit import (
    Report,
    Reporter,
    Step,
    count,
    default_reporter,
    detail,
    main,
    report_progress,
    step,
)

__all__ = [
    "Report",
    "Reporter",
    "Step",
    "count",
    "default_reporter",
    "detail",
    "main",
    "report_progress",
    "step",
]

if __name__ == "__main__":  # python -m orchestrator.jobkit 45 "step text"
    sys.exit(main())
