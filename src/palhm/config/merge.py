"""Merging the loaded files into one config, remembering where everything came from
(doc/design.md#configuration).

- `execs`, `tasks`: concatenated in load order; an id defined twice (in one file or
  across files) is an issue naming both places; the first definition is kept.
- `modules`: united. `vl`, `nb-workers`, `metrics`: the last-loaded file wins.
- `boot-report`: `mail-to` lists concatenated, other keys merged (last-loaded wins),
  `mua-param` merged key by key, `mua` may be set in one file only.

Values of the wrong type are skipped here: the schema reports them.
"""

from __future__ import annotations

from typing import Any

from palhm.config.loader import SourceFile
from palhm.config.problems import Issue, JsonPath, format_path
from palhm.records import field, record

SCALARS = ("nb-workers", "vl", "metrics")


@record
class Entry:
    """A value and its origin: the file and the JSON path within that file."""

    file: str
    path: JsonPath
    data: Any

    def at(self, *parts: str | int) -> JsonPath:
        return self.path + parts


@record(frozen=False)
class BootReportParts:
    """The merged boot-report. `values`: key -> last Entry setting it (mua-param and
    mail-to excluded); `mail_to`: every recipient; `params`: each file's mua-param."""

    sections: list[Entry] = field(default_factory=list)
    values: dict[str, Entry] = field(default_factory=dict)
    mail_to: list[Entry] = field(default_factory=list)
    params: list[Entry] = field(default_factory=list)


@record(frozen=False)
class Merged:
    files: list[SourceFile]
    execs: list[Entry] = field(default_factory=list)  # every definition, duplicates too
    tasks: list[Entry] = field(default_factory=list)
    exec_ids: dict[str, Entry] = field(default_factory=dict)  # first definition of each id
    task_ids: dict[str, Entry] = field(default_factory=dict)
    modules: list[Entry] = field(default_factory=list)  # each mention, in load order
    scalars: dict[str, Entry] = field(default_factory=dict)
    boot_report: BootReportParts | None = None
    issues: list[Issue] = field(default_factory=list)

    @property
    def module_names(self) -> frozenset[str]:
        return frozenset(e.data for e in self.modules)


def merge(files: list[SourceFile]) -> Merged:
    """Merge `files` (in load order) into one Merged; merge problems go to `.issues`."""
    merged = Merged(files)
    for source in files:
        document = source.document
        _merge_defined(merged, source.name, document, "execs", "exec")
        _merge_defined(merged, source.name, document, "tasks", "task")
        for index, name in enumerate(_list(document.get("modules"))):
            if isinstance(name, str):
                merged.modules.append(Entry(source.name, ("modules", index), name))
        for key in SCALARS:
            if key in document:
                merged.scalars[key] = Entry(source.name, (key,), document[key])
        if isinstance(document.get("boot-report"), dict):
            _merge_boot_report(merged, source.name, document["boot-report"])
    return merged


def _merge_defined(
    merged: Merged, file: str, document: dict[str, Any], key: str, kind: str
) -> None:
    entries, ids = (
        (merged.execs, merged.exec_ids) if kind == "exec" else (merged.tasks, merged.task_ids)
    )
    for index, item in enumerate(_list(document.get(key))):
        if not isinstance(item, dict):
            continue
        entry = Entry(file, (key, index), item)
        entries.append(entry)
        item_id = item.get("id")
        if not isinstance(item_id, str):
            continue
        first = ids.setdefault(item_id, entry)
        if first is not entry:
            merged.issues.append(
                Issue(
                    file,
                    entry.at("id"),
                    f"duplicate {kind} id '{item_id}' "
                    f"(first defined in {first.file} at '{format_path(first.path)}')",
                )
            )


def _merge_boot_report(merged: Merged, file: str, section: dict[str, Any]) -> None:
    parts = merged.boot_report or BootReportParts()
    merged.boot_report = parts
    base: JsonPath = ("boot-report",)
    parts.sections.append(Entry(file, base, section))
    for key, value in section.items():
        entry = Entry(file, (*base, key), value)
        if key == "mail-to":
            parts.mail_to.extend(
                Entry(file, (*base, key, i), rcpt) for i, rcpt in enumerate(_list(value))
            )
        elif key == "mua-param":
            if isinstance(value, dict):
                parts.params.append(entry)
        elif key == "mua" and "mua" in parts.values:
            first = parts.values["mua"]
            merged.issues.append(
                Issue(
                    file,
                    entry.path,
                    f"'mua' is already set in {first.file} (set it in one file only)",
                )
            )
        else:
            parts.values[key] = entry


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []
