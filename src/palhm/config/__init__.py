"""The config layer: load (JSONC, includes, merge) -> validate (schema + logic) -> model.

Public API (used by cli.py):

    load_config(path) -> model.Config
    load_effective(path) -> (model.Config, dict)   # dict: merged document, defaults filled
    schema_text() -> str                            # the shipped JSON Schema

`path` is a file path, or `builtin:NAME` for the packaged src/palhm/data/NAME.jsonc.
Every problem of every file is collected and raised together as one ConfigError
(exit status 2), one line per problem: `file: at 'json.path': what was expected`.
Raw config dicts never leave this package.
"""

from __future__ import annotations

import json
import os
from typing import Any

from palhm.config.build import build_config
from palhm.config.checks import logic_issues
from palhm.config.defaults import definition, json_safe, with_defaults
from palhm.config.loader import load_files
from palhm.config.merge import BootReportParts, Merged, merge
from palhm.config.problems import Issue, config_error
from palhm.config.validate import schema, schema_issues
from palhm.model import Config
from palhm.records import record

__all__ = ["load_config", "load_effective", "schema_text"]


@record
class _Result:
    config: Config
    merged: Merged


def load_config(path: str | os.PathLike[str]) -> Config:
    """Load, validate and build the config at `path`. Raises ConfigError with every
    problem found (file and JSON path on each line)."""
    return _load(path).config


def load_effective(path: str | os.PathLike[str]) -> tuple[Config, dict[str, Any]]:
    """Like load_config, plus the effective document for `palhm config show`: every
    file merged, schema defaults filled in, JSON-serialisable (infinite limits are
    written "Infinity")."""
    result = _load(path)
    return result.config, effective_document(result.merged)


def schema_text() -> str:
    """The shipped JSON Schema, pretty-printed, ending with a newline."""
    return json.dumps(schema(), indent=2, ensure_ascii=False) + "\n"


def _load(path: str | os.PathLike[str]) -> _Result:
    loaded = load_files(path)
    issues: list[Issue] = list(loaded.issues)
    for source in loaded.files:
        issues.extend(schema_issues(source.name, source.document))
    merged = merge(loaded.files)
    issues.extend(merged.issues)
    # Without every file, references would fail by the dozen: report what we have.
    if loaded.complete:
        issues.extend(logic_issues(merged))
    if issues:
        documents = {source.name: source.document for source in loaded.files}
        raise config_error(issues, ranks=loaded.ranks, documents=documents)
    return _Result(build_config(os.fspath(path), merged), merged)


def effective_document(merged: Merged) -> dict[str, Any]:
    """The merged config as one document with schema defaults filled in."""
    document: dict[str, Any] = {}
    if merged.modules:
        document["modules"] = sorted(merged.module_names)
    for key in ("nb-workers", "vl"):
        entry = merged.scalars.get(key)
        document[key] = entry.data if entry else schema()["properties"][key]["default"]
    document["execs"] = [with_defaults(e.data, definition("exec")) for e in merged.execs]
    document["tasks"] = [with_defaults(e.data, definition("task")) for e in merged.tasks]
    if merged.boot_report is not None:
        document["boot-report"] = _effective_boot_report(merged.boot_report)
    if "metrics" in merged.scalars:
        document["metrics"] = merged.scalars["metrics"].data
    safe: dict[str, Any] = json_safe(document)
    return safe


def _effective_boot_report(parts: BootReportParts) -> dict[str, Any]:
    section = {key: entry.data for key, entry in parts.values.items()}
    if "bootid" in section:  # one spelling in the output: the documented-by-palhm one
        section.setdefault("boot-id", section["bootid"])
        del section["bootid"]
    section["mail-to"] = [entry.data for entry in parts.mail_to]
    mua = section.get("mua")
    params: dict[str, Any] = {}
    for entry in parts.params:
        params.update(entry.data)
    section["mua-param"] = with_defaults(params, definition(f"mua-param-{mua}"))
    filled: dict[str, Any] = with_defaults(section, definition("boot-report"))
    return filled
