"""The module registry (doc/design.md#configuration): optional modules named in a config's
`modules`."""

from __future__ import annotations

from collections.abc import Set
from typing import Final

from palhm.records import record


@record
class ModuleInfo:
    name: str
    backends: tuple[str, ...]
    muas: tuple[str, ...]
    description: str
    libraries: tuple[str, ...] = ()  # Python modules it imports when used


MODULES: Final[dict[str, ModuleInfo]] = {
    "aws": ModuleInfo(
        "aws",
        backends=("aws-s3",),
        muas=("aws-sns",),
        description="Amazon S3 (and S3-compatible) backend and SNS boot report MUA; needs boto3",
        libraries=("boto3",),
    ),
}

CORE_BACKEND_NAMES: Final = ("null", "localfs")
CORE_MUA_NAMES: Final = ("stdout", "mailx", "smtp")


def backend_names(modules: Set[str]) -> list[str]:
    """Backend names a config with these modules may use."""
    names = list(CORE_BACKEND_NAMES)
    for m in sorted(modules):
        names.extend(MODULES[m].backends if m in MODULES else ())
    return names


def mua_names(modules: Set[str]) -> list[str]:
    """MUA names a config with these modules may use."""
    names = list(CORE_MUA_NAMES)
    for m in sorted(modules):
        names.extend(MODULES[m].muas if m in MODULES else ())
    return names


def missing_libraries(info: ModuleInfo) -> list[str]:
    """The Python libraries a module needs that this interpreter cannot import."""
    from importlib.util import find_spec

    return [name for name in info.libraries if find_spec(name) is None]
