"""What a reload changes, as a table: jobs added, removed, changed, kept, from the specs running and wanted."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.config import JobSettings, Settings, StoreSettings
from orchestrator.jobsfile import parse_jobs
from orchestrator.jobsfile.plan import Plan, plan
from orchestrator.jobsfile.spec import JobSpec, specs_of

SETTINGS = Settings(job=JobSettings(triggers_dir=Path("/t")), store=StoreSettings(data_dir=Path("/d")))


def specs(text: str) -> dict[str, JobSpec]:
    return specs_of(parse_jobs(text, Path("jobs.toml")), SETTINGS)


A = '[jobs.a]\ncommand = "true"\ninterval = 30\n'
B = '[jobs.b]\ncommand = "true"\ncron = "0 3 * * *"\ntimezone = "UTC"\n'
C = '[jobs.c]\ncommand = "true"\nafter = ["a"]\n'


@pytest.mark.parametrize(
    ("running", "wanted", "expected"),
    [
        (A + B, A + B, Plan(kept=("a", "b"))),
        (A, A + B + C, Plan(added=("b", "c"), kept=("a",))),
        (A + B + C, A, Plan(removed=("b", "c"), kept=("a",))),
        (A + B, A.replace("30", "15") + B, Plan(changed=("a",), kept=("b",))),
        (A + B, A + B.replace('"UTC"', '"Europe/Berlin"'), Plan(changed=("b",), kept=("a",))),
        (A + C, A + C.replace('after = ["a"]', "paused = true"), Plan(changed=("c",), kept=("a",))),
        # Who is the default job decides the job's trigger folder: a change of it.
        (A + B, 'default-job = "b"\n' + A + B, Plan(changed=("a", "b"))),
        # The order of the tables names the default job when default-job does not...
        (A + B, "# nightly\n" + B + "\n" + A, Plan(changed=("b", "a"))),
        # ...else the order, the whitespace and the comments are no change.
        (A + B, 'default-job = "a"\n# nightly\n' + B + "\n" + A, Plan(kept=("b", "a"))),
        (A + B, "[defaults]\ncooldown = 5\n" + A + B, Plan(kept=("a", "b"))),
        (A, "[defaults]\ncooldown = 7\n" + A, Plan(changed=("a",))),
    ],
)
def test_a_reload_changes_what_the_file_says_differently(running: str, wanted: str, expected: Plan) -> None:
    assert plan(specs(running), specs(wanted)) == expected


def test_the_summary_is_one_line_naming_each_kind_of_change() -> None:
    change = Plan(added=("report",), removed=("backup",), changed=("snapshot",), kept=("index", "mail"))
    assert change.summary() == "added report; removed backup; changed snapshot; 2 unchanged"
    assert Plan(kept=("a",)).summary() == "1 unchanged"
