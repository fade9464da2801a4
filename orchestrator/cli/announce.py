"""What ``serve`` says at start about what guards it: one line of the protections, and a warning for each
setting or finding that leaves the service less guarded than meant (no token off loopback, a misspelt
variable, a replaced lock link, any host name answered)."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

from orchestrator.cli.options import ENV_NAMES
from orchestrator.config import Settings, is_loopback
from orchestrator.store.lock import InstanceLock

log = logging.getLogger(__name__)

JOB_VARIABLES = frozenset(
    {"SNAPSHOT_JOB", "SNAPSHOT_PROGRESS_FILE", "SNAPSHOT_RUN_ID", "SNAPSHOT_TRIGGER", "SNAPSHOT_REASON"}
)
"""What the service sets for its job (a service started from a job's environment has them too)."""


def say_at_start(settings: Settings, lock: InstanceLock) -> None:
    """What guards the service, and every setting or finding at start that leaves it less guarded than meant."""
    http = settings.http
    if not is_loopback(http.host) and not http.token:
        log.warning(
            "LISTENING ON %s WITHOUT A TOKEN: anyone who can reach this port can start and cancel snapshots. "
            "Set SNAPSHOT_TOKEN (or --token), or listen on 127.0.0.1.",
            http.host,
        )
    for name, guess in unknown_variables(os.environ):
        log.warning(
            "%s is not a setting of snapshot-orchestrator%s; it is ignored",
            name,
            f" (did you mean {guess}?)" if guess else "",
        )
    log.info("%s", protections(settings))
    if lock.replaced_link is not None:
        log.warning(
            "%s was a symlink to %r; not followed: removed it and locked a file of our own (its target is left "
            "as it is)",
            lock.path,
            lock.replaced_link,
        )
    if not is_loopback(http.host) and not http.allowed_hosts and not http.token_for_reads:
        # With the token needed for reads too, a rebinding page (which has no token) gets 401 for everything.
        log.warning(
            "listening on %s for any host name: a web page whose DNS name is made to point at this machine (DNS "
            "rebinding) can read the status, history and logs through a visitor's browser%s. Set "
            "SNAPSHOT_ALLOWED_HOSTS (or --allowed-host) to the names clients use.",
            http.host,
            "" if http.token else ", and start and cancel snapshots",
        )


def unknown_variables(environ: Mapping[str, str]) -> list[tuple[str, str | None]]:
    """``SNAPSHOT_*`` variables that name no setting, each with the setting it most looks like: a typo
    (``SNAPSHOT_ALLOWED_HOST``) would otherwise leave a protection off without a word."""
    known = {*ENV_NAMES, *JOB_VARIABLES}
    found = []
    for name in sorted(environ):
        if name.startswith("SNAPSHOT_") and name not in known:
            import difflib  # a misspelt variable is rare: not imported at each start

            close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.8)
            found.append((name, close[0] if close else None))
    return found


def protections(settings: Settings) -> str:
    """One line of what guards the HTTP surface, so that a setting that did not take is seen at start."""
    http = settings.http
    token = "off" if not http.token else ("on, reads too" if http.token_for_reads else "on, for changes")
    if http.allowed_hosts:
        hosts = ", ".join(http.allowed_hosts) + ", loopback names and IP addresses"
    else:
        hosts = "loopback names and IP addresses" if is_loopback(http.host) else "any"
    return (
        f"token: {token}; host names answered: {hosts}; other origins: {', '.join(http.allow_origins) or 'none'}; "
        f"trusted proxies: {', '.join(map(str, http.trusted_proxies)) or 'none'}"
    )
