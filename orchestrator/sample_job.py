"""The name the default command runs (``python -m orchestrator.sample_job``): the bundled sample job is
:mod:`orchestrator.job.sample`."""

from __future__ import annotations

from orchestrator.job.sample import main

__all__ = ["main"]

if __name__ == "__main__":
    raise SystemExit(main())
