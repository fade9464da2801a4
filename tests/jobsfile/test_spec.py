"""A job's files: the default job keeps today's triggers folder and progress file; any other job has a folder of
its name in the triggers folder and a progress file of its name in the data folder."""

from __future__ import annotations

from pathlib import Path

from orchestrator.config import JobSettings, Settings, StoreSettings
from orchestrator.jobsfile.model import JobConfig
from orchestrator.jobsfile.spec import JobSpec


def settings(root: Path) -> Settings:
    return Settings(job=JobSettings(triggers_dir=root / "triggers"), store=StoreSettings(data_dir=root / "data"))


def test_the_default_job_keeps_todays_files_and_another_job_has_its_own(tmp_path: Path) -> None:
    s = settings(tmp_path)
    flags = JobSpec.from_settings(s)
    assert (flags.name, flags.triggers_dir, flags.progress_path) == (
        "snapshot",
        tmp_path / "triggers",
        tmp_path / "data" / "snapshot_progress.json",
    )
    assert flags.progress_path == s.store.progress_path
    report = JobConfig("report", ("python3", "report.py"), cron="30 7 * * 1-5", cwd=tmp_path / "r", env={"A": "1"})
    spec = JobSpec.from_config(report, s, default=False)
    assert (spec.triggers_dir, spec.progress_path) == (
        tmp_path / "triggers" / "report",
        tmp_path / "data" / "report_progress.json",
    )
    assert (spec.cwd, dict(spec.env), spec.state_path) == (tmp_path / "r", {"A": "1"}, s.store.state_path)
    nightly = JobSpec.from_config(JobConfig("nightly", ("true",), interval_minutes=60), s, default=True)
    assert (nightly.triggers_dir, nightly.progress_path) == (
        tmp_path / "triggers",
        tmp_path / "data" / "nightly_progress.json",
    )
