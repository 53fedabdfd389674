"""Shared pytest setup. Service fixtures live in tests/services/, one module each."""

from __future__ import annotations

pytest_plugins = [
    "tests.services.moto",
    "tests.services.smtp",
    "tests.services.dnslab",
    "tests.services.databases",
]
