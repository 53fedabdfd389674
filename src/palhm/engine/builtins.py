"""Builtin routine items (doc/design.md#routines): things palhm does itself instead of running a
program.

One function per builtin, one registry line each: BUILTINS = {"sigmask": ...}. The
config layer validates `builtin-id` against BUILTINS and parses each builtin's
`param` into the model (model.Builtin), so the functions here get checked values.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable
from typing import Final

from palhm.errors import PalhmError
from palhm.model import Builtin
from palhm.values import signal_name

log = logging.getLogger(__name__)

BuiltinFunction = Callable[[Builtin], None]

_HOW: Final = {"block": signal.SIG_BLOCK, "unblock": signal.SIG_UNBLOCK}


def sigmask(item: Builtin) -> None:
    """Apply each block/unblock action, in order, to palhm's signal mask.

    pthread_sigmask changes the calling (main) thread's mask; threads and children
    started afterwards inherit it, and palhm's own helper threads block SIGINT and
    SIGTERM, so a blocked signal stays pending instead of reaching palhm. Used so
    that a routine ending in `reboot` is not cut short by the init system's SIGTERM.
    """
    for action in item.sigmask:
        names = ", ".join(signal_name(signum) for signum in action.signals)
        log.debug("sigmask: %s %s", action.action, names)
        signal.pthread_sigmask(_HOW[action.action], action.signals)


BUILTINS: Final[dict[str, BuiltinFunction]] = {
    "sigmask": sigmask,
}


def run_builtin(item: Builtin, *, context: str = "builtin") -> None:
    """Run one builtin item. Raises PalhmError naming `context` when it fails."""
    function = BUILTINS.get(item.builtin_id)
    if function is None:
        known = ", ".join(sorted(BUILTINS))
        raise PalhmError(f"{context}: unknown builtin '{item.builtin_id}' (known: {known})")
    try:
        function(item)
    except (OSError, ValueError) as error:
        raise PalhmError(f"{context}: builtin '{item.builtin_id}' failed: {error}") from error
