"""Streaming checksums of backup objects (doc/design.md#copy-protocol).

The pipeline runner feeds every chunk it relays to the sink through a `Hasher`, so
an object's checksum is known the moment its last byte is stored; nothing is ever
read back to be hashed. All three hashers release the GIL on large buffers, so
hashing in the pump threads of several objects runs in parallel.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, Protocol

# The hash modules are imported by the factory that needs them: a run with
# `checksum: none` (or none at all) never loads them.

DEFAULT_ALGORITHM: Final = "blake3"

# blake3 may split one update over several threads. Hashing 1 GiB streamed from a
# pipe in 1 MiB chunks on this 2-core machine, AUTO threads gave the same wall time
# and ~5% more CPU than one thread: in a backup the cores are busy with the stages
# (tar, zstd, gpg) and other objects, and one thread already hashes ~6 GB/s.
BLAKE3_MAX_THREADS: Final = 1


class Hasher(Protocol):
    """The part of hashlib's interface the pipeline runner uses."""

    def update(self, data: bytes | memoryview, /) -> object: ...

    def hexdigest(self) -> str: ...


def _blake3() -> Hasher:
    import blake3

    hasher: Hasher = blake3.blake3(max_threads=BLAKE3_MAX_THREADS)
    return hasher


def _sha256() -> Hasher:
    import hashlib

    return hashlib.sha256()


def _xxh3_128() -> Hasher:
    import xxhash

    hasher: Hasher = xxhash.xxh3_128()
    return hasher


# algorithm name (the task's `checksum` value) -> factory; None = size only.
ALGORITHMS: Final[dict[str, Callable[[], Hasher] | None]] = {
    "blake3": _blake3,
    "sha256": _sha256,
    "xxh3-128": _xxh3_128,
    "none": None,
}

# The command that checks a stored object by hand, for docs and `palhm verify` hints.
CHECK_COMMANDS: Final[dict[str, str]] = {
    "blake3": "b3sum",
    "sha256": "sha256sum",
    "xxh3-128": "xxh128sum",
}


def new_hasher(name: str) -> Hasher | None:
    """A fresh hasher for algorithm `name`, or None for "none" (size only).

    Raises ValueError for an unknown name (config validation rejects those first).
    """
    try:
        factory = ALGORITHMS[name]
    except KeyError:
        known = ", ".join(ALGORITHMS)
        raise ValueError(f"unknown checksum algorithm '{name}' (expected one of {known})") from None
    return factory() if factory is not None else None


def digest_bytes(name: str, data: bytes) -> str | None:
    """Checksum of a whole buffer (tests, verification of small objects)."""
    hasher = new_hasher(name)
    if hasher is None:
        return None
    hasher.update(data)
    return hasher.hexdigest()
