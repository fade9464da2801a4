"""The name jobs import (``from orchestrator.jobkit import report_progress``, ``python -m orchestrator.jobkit``).

The helper itself is :mod:`orchestrator.job.jobkit`, one standard-library-only file a job may copy.
"""

from __future__ import annotations

import sys

from orchestrator.job.jobkit import report_progress

__all__ = ["report_progress"]

if __name__ == "__main__":  # python -m orchestrator.jobkit 45 "step text"
    report_progress(float(sys.argv[1]), " ".join(sys.argv[2:]))
