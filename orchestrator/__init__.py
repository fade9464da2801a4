"""snapshot-orchestrator: run a slow job on a schedule or on demand, one at a time, with live progress."""

__version__ = "0.1.0"
