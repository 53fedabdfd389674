"""The `stdout` MUA: prints the message instead of sending it (tests, dry runs)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from palhm.notify.mua.base import Mua


class StdoutMua(Mua):
    """Prints `Subject:` and `To:` lines, a blank line, then the body, to stdout.

    No parameters. The only MUA that prints (doc/design.md#notifications): printing is its job.
    """

    name = "stdout"

    def send(self, *, subject: str, body: str, recipients: Sequence[str]) -> None:
        out = sys.stdout
        out.write(f"Subject: {subject}\nTo: {', '.join(recipients)}\n\n{body}")
        if body and not body.endswith("\n"):
            out.write("\n")
        out.flush()
