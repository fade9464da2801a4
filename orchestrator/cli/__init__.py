"""The command line: ``snapshot-orchestrator serve`` and the client commands that talk to a running service."""

from orchestrator.cli.main import main

__all__ = ["main"]
