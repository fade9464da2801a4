"""Command line: ``serve`` (the default), ``check``, ``trigger``, ``status``, ``cancel``, ``pause``, ``resume``,
``runs show`` and ``reload``. Flags win over environment variables, which win over defaults. Bad settings end
with one line on stderr and exit status 2, before anything runs."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from orchestrator.cli.options import settings_from
from orchestrator.cli.parser import BUILDERS, build_parser
from orchestrator.cli.serve import OWN_FILES, cmd_serve
from orchestrator.config import ConfigError
from orchestrator.core.printable import printable

__all__ = ["OWN_FILES", "build_parser", "main", "settings_from"]


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version")):
        argv.insert(0, "serve")
    # Only the command given is built (the top-level help, or a name that is no command, needs them all).
    args = build_parser(argv[0] if argv[0] in BUILDERS else None).parse_args(argv)
    try:
        return _run(args)
    except BrokenPipeError:
        # ``status | head``: the reader has what it wanted. Point stdout at nothing, so that the interpreter's
        # own flush at exit does not raise (and print a traceback) again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _run(args: argparse.Namespace) -> int:
    # Each command's module is imported when it runs: ``serve`` starts without the client commands' modules (and
    # theirs: the calendar, the jobs file's parser, the progress display), and a client command without the app's.
    try:
        if args.command_name == "check":
            from orchestrator.cli.check import cmd_check

            return cmd_check(args)
        if args.command_name in ("trigger", "cancel", "pause", "resume", "reload"):
            from orchestrator.cli import client

            if args.command_name in ("pause", "resume"):
                return client.cmd_pause_resume(args)
            run = {"trigger": client.cmd_trigger, "cancel": client.cmd_cancel, "reload": client.cmd_reload}
            return run[args.command_name](args)
        if args.command_name == "status":
            from orchestrator.cli.status import cmd_status

            return cmd_status(args)
        if args.command_name == "runs":
            from orchestrator.cli.runs import cmd_runs

            return cmd_runs(args)
        return cmd_serve(args)
    except ConfigError as exc:
        # printable: the message may quote the service's answer or the user's --url.
        print(f"snapshot-orchestrator: error: {printable(str(exc))}", file=sys.stderr)
        return 2
