"""The argparse parser: the commands, their own arguments, and the settings options from the one table
(orchestrator/cli/options.py), each given to the commands that read it."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeAlias

from orchestrator import __version__
from orchestrator.cli.options import OPTIONS, Option

COMMANDS = "{serve,check,trigger,status,cancel,pause,resume,runs,reload}"


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole parser; with ``only`` (a command's name, as the first argument), that command's alone: a start
    of ``serve`` does not build the eight others' (their help texts appear in the top-level help only)."""
    parser = argparse.ArgumentParser(
        prog="snapshot-orchestrator",
        description="Run a slow job every N minutes or on demand, one at a time, with live progress.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command_name", metavar=COMMANDS)
    for name, add in BUILDERS.items():
        if only is None or only == name:
            add(commands)
    return parser


if TYPE_CHECKING:  # not subscriptable at run time
    Commands: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]


def _serve(commands: Commands) -> None:
    serve = commands.add_parser("serve", help="run the API server and the scheduler (the default)")
    add_options(serve, "serve")


def _check(commands: Commands) -> None:
    check = commands.add_parser(
        "check",
        help="check the settings (and the jobs file) without starting; print each job and its next three runs",
    )
    add_options(check, "check")


def _trigger(commands: Commands) -> None:
    trig = commands.add_parser(
        "trigger",
        help="ask for a run by dropping a file into the triggers folder (--wait: over HTTP, and follow the run)",
    )
    trig.add_argument("--reason", default="", help="why; recorded with the run")
    add_job_argument(trig)
    trig.add_argument(
        "--wait",
        action="store_true",
        help="trigger over HTTP and follow the run to its end with a progress bar; exit 0 if it completed, "
        "1 if it failed or was cancelled, 2 if it could not be followed",
    )
    add_options(trig, "trigger")


def _status(commands: Commands) -> None:
    stat = commands.add_parser(
        "status", help="print the state of every job (or of --job), from the server or else from the data folder"
    )
    stat.add_argument(
        "--json", action="store_true", help="print the raw status document (of --job, else of the default job)"
    )
    add_job_argument(stat)
    add_options(stat, "status")


def _cancel(commands: Commands) -> None:
    cancel = commands.add_parser("cancel", help="stop the running run (recorded as cancelled)")
    cancel.add_argument("--reason", default="", help="why; recorded with the run")
    add_job_argument(cancel)
    add_options(cancel, "cancel")


def _pause(commands: Commands) -> None:
    # The server side of pause and resume is orchestrator/http/pause.py.
    pause = commands.add_parser("pause", help="pause the automatic schedule (manual triggers still run)")
    pause.add_argument("--reason", default="", help="why; shown in the status")
    add_job_argument(pause)
    add_options(pause, "pause")


def _resume(commands: Commands) -> None:
    resume = commands.add_parser("resume", help="resume the automatic schedule")
    add_job_argument(resume)
    add_options(resume, "resume")


def _runs(commands: Commands) -> None:
    runs = commands.add_parser("runs", help="the runs the server keeps: 'runs show RUNID' prints a run's steps")
    what = runs.add_subparsers(dest="runs_command", metavar="{show}", required=True)
    show = what.add_parser("show", help="print a run's steps as a table: start, duration, percent, last detail")
    show.add_argument("run_id", metavar="RUNID", help="the run's id (its runId, as status and the history show it)")
    show.add_argument("--json", action="store_true", help="print the raw steps document")
    add_job_argument(show)
    add_options(show, "runs")


def _reload(commands: Commands) -> None:
    reload = commands.add_parser(
        "reload", help="make the service read its jobs file again (as SIGHUP does); print what changed"
    )
    add_options(reload, "reload")


BUILDERS: dict[str, Callable[[Commands], None]] = {
    "serve": _serve,
    "check": _check,
    "trigger": _trigger,
    "status": _status,
    "cancel": _cancel,
    "pause": _pause,
    "resume": _resume,
    "runs": _runs,
    "reload": _reload,
}
"""Each command's sub-parser, in the order the help lists them."""


def add_options(parser: argparse.ArgumentParser, command: str) -> None:
    """The table's options that ``command`` reads, in the table's order; each group in a section of its own."""
    groups: dict[str, argparse._ArgumentGroup] = {}
    for option in OPTIONS:
        if command not in option.commands:
            continue
        target = parser if option.group is None else _group(parser, groups, option.group)
        add_option(target, option, command)


def _group(
    parser: argparse.ArgumentParser, groups: dict[str, argparse._ArgumentGroup], title: str
) -> argparse._ArgumentGroup:
    if title not in groups:
        groups[title] = parser.add_argument_group(title)
    return groups[title]


def add_option(target: argparse._ActionsContainer, option: Option, command: str) -> None:
    help_text = option.help_text(command)
    if option.switch:
        target.add_argument(option.flag, action="store_const", const="true", help=help_text)
    elif option.repeat:
        target.add_argument(option.flag, action="append", help=help_text)
    else:
        target.add_argument(option.flag, help=help_text, metavar=option.metavar)


def add_job_argument(parser: argparse.ArgumentParser) -> None:
    """``--job NAME`` of a client command (orchestrator/cli/jobs.py: what it means), here so that ``serve``
    does not import the client commands' module."""
    parser.add_argument(
        "--job",
        metavar="NAME",
        help="the job (of the service's jobs file) to act on; default: the service's default job",
    )
