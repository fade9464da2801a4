"""What a reload changes: the jobs added, removed, changed and kept, from the jobs running and the file read
again. Pure: it compares what each job is said to be, not the running units."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from orchestrator.jobsfile.spec import JobSpec


class ReloadRefused(Exception):
    """The jobs file read again cannot be used, or there is none (``str()`` says why, in one line); the running
    jobs stay. Here, beside the plan, so that the HTTP room can answer it without importing the service."""


@dataclass(frozen=True, slots=True)
class Plan:
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    """Jobs whose settings (or files: the default job changed) differ: they take the change from their next run."""
    kept: tuple[str, ...] = ()

    def summary(self) -> str:
        """One line for the log and the answer: ``added report; changed snapshot; 2 unchanged``."""
        parts = [
            f"{word} {', '.join(names)}"
            for word, names in (("added", self.added), ("removed", self.removed), ("changed", self.changed))
            if names
        ]
        parts.append(f"{len(self.kept)} unchanged")
        return "; ".join(parts)


def plan(running: Mapping[str, JobSpec], wanted: Mapping[str, JobSpec]) -> Plan:
    """``running`` and ``wanted`` by job name, in their order."""
    same = {name for name in running.keys() & wanted.keys() if _said(running[name]) == _said(wanted[name])}
    return Plan(
        added=tuple(name for name in wanted if name not in running),
        removed=tuple(name for name in running if name not in wanted),
        changed=tuple(name for name in wanted if name in running and name not in same),
        kept=tuple(name for name in wanted if name in same),
    )


def _said(spec: JobSpec) -> object:
    return (spec.config, spec.triggers_dir, spec.progress_path, spec.state_path)
