"""Pinned copies: `palhm pin TASK PREFIX` / `unpin` (restic's keep-tag, one tag).

Pins live on the backend, next to the copies, in ROOT/.palhm-pins.json (a name that
is never a copy prefix, so listing and rotation never take it for a copy):

    {"format": "palhm-pins", "pinned": {"2024-05-01T06:59:17+00:00": "2024-05-02T10:00:00+00:00"}}

(prefix -> when it was pinned). Rotation never removes a pinned copy; `list` shows it.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Final

from palhm.backends.base import Backend
from palhm.errors import BackendError

log = logging.getLogger(__name__)

PINS_NAME: Final = ".palhm-pins.json"
_FORMAT: Final = "palhm-pins"


def read_pins(backend: Backend) -> frozenset[str]:
    """The pinned prefixes (empty when none). Raises BackendError when the pins file
    exists but cannot be read or parsed: rotating without knowing the pins could
    remove a pinned copy."""
    return frozenset(_load(backend))


def set_pin(backend: Backend, prefix: str, *, pinned: bool) -> bool:
    """Pin or unpin `prefix`; True when that changed something."""
    pins = _load(backend)
    if pinned == (prefix in pins):
        return False
    if pinned:
        pins[prefix] = datetime.now(UTC).isoformat(timespec="seconds")
    else:
        del pins[prefix]
    document = {"format": _FORMAT, "pinned": dict(sorted(pins.items()))}
    backend.write_note(PINS_NAME, (json.dumps(document, indent=1) + "\n").encode())
    return True


def _load(backend: Backend) -> dict[str, str]:
    data = backend.read_note(PINS_NAME)
    if data is None:
        return {}
    try:
        document = json.loads(data)
        if not isinstance(document, dict) or document.get("format") != _FORMAT:
            raise ValueError('no "format": "palhm-pins"')
        pinned = document.get("pinned", {})
        if not isinstance(pinned, dict):
            raise ValueError('"pinned" is not an object')
        return {str(prefix): str(since) for prefix, since in pinned.items()}
    except (UnicodeDecodeError, ValueError) as error:
        raise BackendError(f"{backend.describe()}/{PINS_NAME} is damaged: {error}") from None
