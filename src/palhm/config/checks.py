"""Logic checks on the merged config: what a JSON Schema cannot say (doc/design.md#configuration,
#backups-objects-and-groups).

References (exec-id, task-id, group ids), cycles, object paths, the small value
grammars of values.py, modules that backends and MUAs need, and the merged
boot-report. Each check reads the raw documents defensively (a value of the wrong
type is skipped: the schema has reported it), so every problem is found in one pass.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from typing import Any, Final, TypeVar

from palhm.backends.throttle import parse_rate
from palhm.config.convert import destination_names, expected, normalise_object_path, parse_limit
from palhm.config.merge import Entry, Merged
from palhm.config.problems import Issue, JsonPath, did_you_mean, format_path, known_list
from palhm.config.validate import schema_issues
from palhm.durations import parse_duration
from palhm.engine.guards import parse_percent
from palhm.model import DEFAULT_GROUP
from palhm.modules import MODULES
from palhm.notify.mua import MUAS
from palhm.records import record
from palhm.values import ExitCodeSpec, parse_mode, parse_signal

HOOK_KEYS: Final = ("on-start", "on-success", "on-failure", "finally")
_LIMIT_KEYS: Final = ("nb-copy-limit", "root-size-limit")
_MODE_KEYS: Final = ("dmode", "fmode")
_KEEP_KEYS: Final = tuple(
    f"keep-{u}" for u in ("last", "hourly", "daily", "weekly", "monthly", "yearly")
)
# Bits a mode of palhm's copies may not have: setuid, setgid, sticky and "others may
# write". A backup readable by root alone is the point; a world-writable one is not
# a backup, and a setuid copy of /usr/bin/... would be a gift to local users.
_UNSAFE_MODE_BITS: Final = 0o7002
MAX_BLOCK_SIZE: Final = 64 << 20  # palhm allocates one block per running object
NAME_MAX: Final = 255  # bytes in one file name (Linux, every common file system)
PATH_MAX: Final = 4095  # bytes in a whole path


Node = TypeVar("Node", bound=Hashable)
Where = TypeVar("Where")


@record
class _Context:
    exec_ids: Sequence[str]
    task_ids: Sequence[str]
    modules: frozenset[str]


def logic_issues(merged: Merged) -> list[Issue]:
    """Every logic problem of the merged config."""
    context = _Context(list(merged.exec_ids), list(merged.task_ids), merged.module_names)
    issues = list(_module_issues(merged))
    for entry in [*merged.execs, *merged.tasks]:
        issues.extend(_nul_issues(entry.file, entry.path, entry.data))
    if merged.boot_report is not None:
        for section in merged.boot_report.sections:
            issues.extend(_nul_issues(section.file, section.path, section.data))
    for entry in merged.execs:
        issues.extend(_command_issues(entry.file, entry.path, entry.data))
    for entry in merged.tasks:
        issues.extend(_task_issues(entry, context))
    issues.extend(_task_cycle_issues(merged))
    issues.extend(_boot_report_issues(merged, context))
    return issues


# --------------------------------------------------------------------------- helpers


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_int_or_str(value: Any) -> bool:
    return isinstance(value, int | str) and not isinstance(value, bool)


def _parsed(
    file: str, path: JsonPath, value: Any, parse: Callable[[Any], object]
) -> Iterator[Issue]:
    try:
        parse(value)
    except ValueError as error:
        yield Issue(file, path, expected(error))


def _finite(file: str, path: JsonPath, data: dict[str, Any], key: str) -> Iterator[Issue]:
    value = data.get(key)
    if isinstance(value, float) and not math.isfinite(value):
        shown = "NaN" if math.isnan(value) else ("-Infinity" if value < 0 else "Infinity")
        yield Issue(file, (*path, key), f"expected a finite number, found {shown}")


def _json(value: Any) -> str:
    return json.dumps(value)


def _needs_module(kind: str, name: Any, modules: frozenset[str]) -> str | None:
    """The message when backend/MUA `name` comes from a module not listed, else None."""
    for info in MODULES.values():
        provided = info.backends if kind == "backend" else info.muas
        if name in provided and info.name not in modules:
            return f"{kind} '{name}' needs module '{info.name}' (\"modules\": [\"{info.name}\"])"
    return None


# --------------------------------------------------------------------------- modules, execs


def _module_issues(merged: Merged) -> Iterator[Issue]:
    for entry in merged.modules:
        if entry.data not in MODULES:
            known = ", ".join(MODULES) or "none"
            hint = did_you_mean(entry.data, MODULES)
            yield Issue(
                entry.file, entry.path, f"unknown module '{entry.data}'{hint} (known: {known})"
            )


def _command_issues(file: str, path: JsonPath, command: dict[str, Any]) -> Iterator[Issue]:
    """An exec definition or exec-inline stage: its `ec`, `timeout`, argv and env."""
    if _is_int_or_str(command.get("ec")):
        yield from _parsed(file, (*path, "ec"), command["ec"], ExitCodeSpec.parse)
    yield from _finite(file, path, command, "timeout")
    yield from _argv_env_issues(file, path, command)


def _nul_issues(file: str, path: JsonPath, value: Any) -> Iterator[Issue]:
    """A NUL character anywhere (argv, env, root, URL, address ...): no program
    argument, environment entry or file name can hold one. Object paths and env
    names say so in their own checks."""
    if isinstance(value, str):
        if "\0" in value and path[-1:] != ("path",):
            yield Issue(file, path, "a NUL character cannot be passed to a program or a file name")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _nul_issues(file, (*path, i), item)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _nul_issues(file, (*path, key), item)


def _argv_env_issues(file: str, path: JsonPath, command: dict[str, Any]) -> Iterator[Issue]:
    """An environment name execve() cannot take: empty, or holding '=' (it would be
    read back as another variable) or NUL."""
    for name in _dict(command.get("env")):
        if "\0" in name or "=" in name or not name:
            yield Issue(
                file,
                (*path, "env", name),
                f"{_json(name)} is not an environment variable name"
                " (expected a non-empty name without '=' or NUL)",
            )


def _stage_issues(file: str, path: JsonPath, stage: Any, context: _Context) -> Iterator[Issue]:
    """A pipeline stage or routine item."""
    if not isinstance(stage, dict):
        return
    kind = stage.get("type")
    if kind in ("exec", "exec-append"):
        yield from _reference(
            file, (*path, "exec-id"), stage.get("exec-id"), "exec", context.exec_ids
        )
        yield from _finite(file, path, stage, "timeout")
        yield from _argv_env_issues(file, path, stage)
    elif kind == "exec-inline":
        yield from _command_issues(file, path, stage)
    elif kind == "task":
        yield from _reference(
            file, (*path, "task-id"), stage.get("task-id"), "task", context.task_ids
        )
    elif kind == "builtin":
        yield from _sigmask_issues(file, path, stage)


def _reference(
    file: str, path: JsonPath, wanted: Any, kind: str, known: Sequence[str]
) -> Iterator[Issue]:
    if isinstance(wanted, str) and wanted not in known:
        yield Issue(file, path, f"unknown {kind} '{wanted}' (known: {known_list(wanted, known)})")


def _sigmask_issues(file: str, path: JsonPath, item: dict[str, Any]) -> Iterator[Issue]:
    for i, action in enumerate(_list(item.get("param"))):
        for j, sig in enumerate(_list(_dict(action).get("sig"))):
            if _is_int_or_str(sig):
                yield from _parsed(file, (*path, "param", i, "sig", j), sig, parse_signal)


# --------------------------------------------------------------------------- tasks


def _task_issues(entry: Entry, context: _Context) -> Iterator[Issue]:
    task = entry.data
    kind = task.get("type")
    if kind == "routine":
        for i, item in enumerate(_list(task.get("routine"))):
            yield from _stage_issues(entry.file, entry.at("routine", i), item, context)
    elif kind == "backup":
        yield from _backup_issues(entry, context)
    for key in HOOK_KEYS:
        for i, hook in enumerate(_list(task.get(key))):
            yield from _hook_issues(entry.file, entry.at(key, i), hook, context)


def _hook_issues(file: str, path: JsonPath, hook: Any, context: _Context) -> Iterator[Issue]:
    if not isinstance(hook, dict):
        return
    if hook.get("type") not in ("ping", "mail"):
        yield from _stage_issues(file, path, hook, context)
        return
    if hook.get("type") == "mail" and (
        message := _needs_module("MUA", hook.get("mua"), context.modules)
    ):
        yield Issue(file, (*path, "mua"), message)
    yield from _finite(file, path, hook, "timeout")


def _backup_issues(entry: Entry, context: _Context) -> Iterator[Issue]:
    task, file = entry.data, entry.file
    if "destinations" in task:
        yield from _destinations_issues(entry, context)
    else:
        yield from _backend_issues(file, entry.path, task, context)
    if _is_number(task.get("max-shrink")) or isinstance(task.get("max-shrink"), str):
        yield from _parsed(file, entry.at("max-shrink"), task["max-shrink"], parse_percent)
    groups = _list(task.get("object-groups"))
    yield from _group_issues(file, entry.path, groups)
    known_groups = [DEFAULT_GROUP] + [
        g["id"] for g in groups if isinstance(_dict(g).get("id"), str)
    ]
    yield from _object_issues(file, entry.path, _list(task.get("objects")), known_groups, context)
    if isinstance(task.get("drill"), dict):
        yield from _drill_issues(file, entry.at("drill"), task["drill"], context)


def _backend_issues(
    file: str, path: JsonPath, holder: dict[str, Any], context: _Context
) -> Iterator[Issue]:
    """`backend` and `backend-param` of a task or of one destination."""
    if "backend" not in holder:
        yield Issue(
            file, path, "a backup task needs `backend` (with `backend-param`) or `destinations`"
        )
        return
    if message := _needs_module("backend", holder.get("backend"), context.modules):
        yield Issue(file, (*path, "backend"), message)
    params = _dict(holder.get("backend-param"))
    yield from _backend_param_issues(file, (*path, "backend-param"), params)


def _destinations_issues(entry: Entry, context: _Context) -> Iterator[Issue]:
    """Several destinations: not mixed with the single form, unique names, one
    prefix form, and each destination's backend and parameters."""
    task, file = entry.data, entry.file
    for key in ("backend", "backend-param"):
        if key in task:
            yield Issue(
                file,
                entry.at(key),
                "give either `backend`/`backend-param` (one destination) or `destinations`,"
                " not both",
            )
    items = [d for d in _list(task.get("destinations")) if isinstance(d, dict)]
    for index, item in enumerate(_list(task.get("destinations"))):
        if isinstance(item, dict):
            yield from _backend_issues(file, entry.at("destinations", index), item, context)
    wanted = [
        (d["name"] if isinstance(d.get("name"), str) else None, str(d.get("backend")))
        for d in items
    ]
    seen: dict[str, int] = {}
    for index, name in enumerate(destination_names(wanted)):
        if name in seen:
            yield Issue(
                file,
                entry.at("destinations", index, "name"),
                f"destination name '{name}' is already used by destinations[{seen[name]}]",
            )
        seen.setdefault(name, index)
    prefixes = [_dict(d.get("backend-param")).get("prefix") for d in items]
    for index, form in enumerate(prefixes[1:], start=1):
        if _json(form) != _json(prefixes[0]):
            yield Issue(
                file,
                entry.at("destinations", index, "backend-param", "prefix"),
                "every destination must use the same `prefix` form as destinations[0]"
                " (a copy has one PREFIX on every destination)",
            )


def _drill_issues(
    file: str, path: JsonPath, drill: dict[str, Any], context: _Context
) -> Iterator[Issue]:
    """Stages of set-up, checks and tear-down; check patterns and statuses; hooks."""
    for key in ("set-up", "tear-down"):
        for i, stage in enumerate(_list(drill.get(key))):
            yield from _stage_issues(file, (*path, key, i), stage, context)
    for i, check in enumerate(_list(drill.get("checks"))):
        check = _dict(check)
        where: JsonPath = (*path, "checks", i)
        yield from _stage_issues(file, (*where, "run"), check.get("run"), context)
        if _is_int_or_str(check.get("expect-status")):
            yield from _parsed(
                file, (*where, "expect-status"), check["expect-status"], ExitCodeSpec.parse
            )
        if isinstance(check.get("expect-output"), str):
            yield from _parsed(file, (*where, "expect-output"), check["expect-output"], _regex)
    for key in ("on-success", "on-failure"):
        for i, hook in enumerate(_list(drill.get(key))):
            yield from _hook_issues(file, (*path, key, i), hook, context)


def _regex(pattern: str) -> None:
    try:
        re.compile(pattern, re.MULTILINE)
    except re.error as error:
        raise ValueError(f"a Python regular expression ({error})") from None


def _backend_param_issues(file: str, path: JsonPath, params: dict[str, Any]) -> Iterator[Issue]:
    for key in _LIMIT_KEYS:
        value = params.get(key)
        if _is_number(value) or isinstance(value, str):
            yield from _parsed(file, (*path, key), value, parse_limit)
    rate = params.get("upload-rate-limit")
    if _is_number(rate) or isinstance(rate, str):
        yield from _parsed(file, (*path, "upload-rate-limit"), rate, parse_rate)
    if isinstance(params.get("keep-within"), str):
        yield from _parsed(file, (*path, "keep-within"), params["keep-within"], parse_duration)
    for key in _MODE_KEYS:
        if _is_int_or_str(params.get(key)):
            yield from _parsed(file, (*path, key), params[key], parse_mode)
            yield from _mode_safety(file, (*path, key), params[key])
    yield from _root_issues(file, (*path, "root"), params.get("root"))
    size = params.get("block-size")
    if isinstance(size, int) and not isinstance(size, bool) and size > MAX_BLOCK_SIZE:
        yield Issue(
            file,
            (*path, "block-size"),
            f"expected at most {MAX_BLOCK_SIZE} bytes (64 MiB), found {size}",
        )
    if isinstance(params.get("object-lock"), dict):
        yield from _object_lock_issues(file, path, params)
    keeps = {k: params[k] for k in _KEEP_KEYS if isinstance(params.get(k), int)}
    if keeps and not any(keeps.values()):
        first = next(iter(keeps))
        yield Issue(
            file,
            (*path, first),
            f"{', '.join(f'{k}: 0' for k in keeps)} keeps nothing: as in restic, 0 means the"
            " rule is unset; give at least 1, or remove the keep-* keys to keep every copy"
            " within nb-copy-limit and root-size-limit",
        )


def _object_lock_issues(file: str, path: JsonPath, params: dict[str, Any]) -> Iterator[Issue]:
    """`object-lock` needs a date: its `period`, or a time-based keep-* rule; and a
    checksum on every write (S3 requires Content-MD5 or a checksum with a lock)."""
    lock = params["object-lock"]
    where: JsonPath = (*path, "object-lock")
    if isinstance(lock.get("period"), str):
        yield from _parsed(file, (*where, "period"), lock["period"], parse_duration)
    elif "period" not in lock and not _time_rules(params):
        yield Issue(
            file,
            where,
            "no retain-until date can be derived: the task has no time-based retention"
            " rule (keep-within, keep-hourly, keep-daily, keep-weekly, keep-monthly,"
            " keep-yearly; keep-last, nb-copy-limit and root-size-limit give no date):"
            ' give object-lock a "period", such as "30d"',
        )
    if params.get("request-checksums") == "off":
        yield Issue(
            file,
            (*path, "request-checksums"),
            "S3 requires a checksum on every write with an Object Lock retention:"
            " request-checksums cannot be off with object-lock",
        )


def _time_rules(params: dict[str, Any]) -> bool:
    """Whether a valid time-based keep-* rule is set (keep-within that parses, or a
    calendar rule above 0)."""
    within = params.get("keep-within")
    if isinstance(within, str):
        try:
            parse_duration(within)
            return True
        except ValueError:
            pass
    rules = ("keep-hourly", "keep-daily", "keep-weekly", "keep-monthly", "keep-yearly")
    return any(isinstance(params.get(k), int) and params[k] > 0 for k in rules)


def _mode_safety(file: str, path: JsonPath, raw: Any) -> Iterator[Issue]:
    try:
        mode = parse_mode(raw)
    except ValueError:
        return  # reported by _parsed
    if mode & _UNSAFE_MODE_BITS:
        yield Issue(
            file,
            path,
            f"mode {mode:04o} is unsafe for a backup: setuid, setgid, sticky and"
            ' world-writable bits are refused (expected a mode such as "640")',
        )


def _root_issues(file: str, path: JsonPath, root: Any) -> Iterator[Issue]:
    if isinstance(root, str) and "\0" not in root and (too_long := _long_name(root)):
        yield Issue(file, path, too_long)


def _long_name(path: str) -> str | None:
    """Why a path is too long for the file system, or None."""
    if len(path.encode()) > PATH_MAX:
        return f"longer than {PATH_MAX} bytes"
    for part in path.split("/"):
        if len(part.encode()) > NAME_MAX:
            return f"the name '{part[:20]}...' is longer than {NAME_MAX} bytes"
    return None


def _group_issues(file: str, task_path: JsonPath, groups: list[Any]) -> Iterator[Issue]:
    """Duplicate ids, then each dependency: itself, unknown, or part of a cycle."""
    first_index: dict[str, int] = {}
    for i, group in enumerate(groups):
        group_id = _dict(group).get("id")
        if not isinstance(group_id, str):
            continue
        if group_id in first_index:
            first = format_path((*task_path, "object-groups", first_index[group_id]))
            message = f"duplicate group id '{group_id}' (first defined at '{first}')"
            yield Issue(file, (*task_path, "object-groups", i, "id"), message)
        else:
            first_index[group_id] = i
    edges: dict[str, list[tuple[str, JsonPath]]] = {}
    yield from _dependency_issues(file, task_path, groups, [DEFAULT_GROUP, *first_index], edges)
    for cycle, where in find_cycles(edges):
        yield Issue(file, where, "object group cycle: " + " -> ".join(cycle))


def _dependency_issues(
    file: str,
    task_path: JsonPath,
    groups: list[Any],
    known: Sequence[str],
    edges: dict[str, list[tuple[str, JsonPath]]],
) -> Iterator[Issue]:
    """Self and unknown dependencies; the valid ones are added to `edges`."""
    for i, group in enumerate(groups):
        group_id = _dict(group).get("id")
        for j, dep in enumerate(_list(_dict(group).get("depends"))):
            where: JsonPath = (*task_path, "object-groups", i, "depends", j)
            if not isinstance(dep, str) or not isinstance(group_id, str):
                continue
            if dep == group_id:
                yield Issue(file, where, f"group '{group_id}' depends on itself")
            elif dep not in known:
                yield Issue(file, where, f"unknown group '{dep}' (known: {known_list(dep, known)})")
            else:
                edges.setdefault(group_id, []).append((dep, where))


def _object_issues(
    file: str, task_path: JsonPath, objects: list[Any], groups: Sequence[str], context: _Context
) -> Iterator[Issue]:
    seen: dict[str, int] = {}
    for i, obj in enumerate(objects):
        if not isinstance(obj, dict):
            continue
        path = (*task_path, "objects", i)
        yield from _object_path_issues(file, path, obj.get("path"), seen, i)
        group = obj.get("group")
        if isinstance(group, str) and group not in groups:
            yield Issue(
                file,
                (*path, "group"),
                f"unknown group '{group}' (known: {known_list(group, groups)})",
            )
        for j, stage in enumerate(_list(obj.get("pipeline"))):
            yield from _stage_issues(file, (*path, "pipeline", j), stage, context)
        for j, stage in enumerate(_list(obj.get("restore"))):
            yield from _stage_issues(file, (*path, "restore", j), stage, context)
        for j, stage in enumerate(_list(_dict(obj.get("drill")).get("restore"))):
            yield from _stage_issues(file, (*path, "drill", "restore", j), stage, context)


def _object_path_issues(
    file: str, path: JsonPath, raw: Any, seen: dict[str, int], index: int
) -> Iterator[Issue]:
    if not isinstance(raw, str):
        return
    try:
        normal = normalise_object_path(raw)
    except ValueError as error:
        yield Issue(file, (*path, "path"), str(error))
        return
    if too_long := _long_name(normal):
        yield Issue(file, (*path, "path"), too_long)
        return
    if normal in seen:
        first = format_path((*path[:-1], seen[normal]))
        yield Issue(
            file, (*path, "path"), f"duplicate object path '{normal}' (first used at '{first}')"
        )
        return
    # `a` and `a/b` cannot both exist: one is a file, the other needs a directory there
    parts = normal.split("/")
    clashes = ["/".join(parts[:n]) for n in range(1, len(parts))]
    clashes += [other for other in seen if other.startswith(normal + "/")]
    for other in clashes:
        if other in seen:
            first = format_path((*path[:-1], seen[other]))
            yield Issue(
                file,
                (*path, "path"),
                f"object path '{normal}' clashes with '{other}' (at '{first}'): a file"
                " cannot also be a directory",
            )
            return
    seen[normal] = index


# --------------------------------------------------------------------------- cycles


def _task_cycle_issues(merged: Merged) -> Iterator[Issue]:
    edges: dict[str, list[tuple[str, tuple[str, JsonPath]]]] = {}
    for task_id, entry in merged.task_ids.items():
        for key in ("routine", *HOOK_KEYS):  # hooks may point at tasks too
            for i, item in enumerate(_list(entry.data.get(key))):
                target = _dict(item).get("task-id")
                if (
                    _dict(item).get("type") == "task"
                    and isinstance(target, str)
                    and target in merged.task_ids
                ):
                    edges.setdefault(task_id, []).append(
                        (target, (entry.file, entry.at(key, i, "task-id")))
                    )
    for cycle, (file, path) in find_cycles(edges):
        yield Issue(file, path, "task cycle: " + " -> ".join(cycle))


def find_cycles(
    edges: Mapping[Node, Sequence[tuple[Node, Where]]],
) -> list[tuple[list[Node], Where]]:
    """Cycles met by a depth-first search, each as ([a, b, ..., a], where of the edge
    closing it). Every cycle of the graph has at least one of its edges reported."""
    state: dict[Node, bool] = {}  # True while on the current path, False when finished
    found: list[tuple[list[Node], Where]] = []
    for start in edges:
        if start in state:
            continue
        state[start] = True
        path = [start]
        stack = [iter(edges.get(start, ()))]
        while stack:
            for target, where in stack[-1]:
                if state.get(target) is True:
                    found.append(([*path[path.index(target) :], target], where))
                elif target not in state:
                    state[target] = True
                    path.append(target)
                    stack.append(iter(edges.get(target, ())))
                    break
            else:
                state[path.pop()] = False
                stack.pop()
    return found


# --------------------------------------------------------------------------- boot-report


def _boot_report_issues(merged: Merged, context: _Context) -> Iterator[Issue]:
    parts = merged.boot_report
    if parts is None:
        return
    last = parts.sections[-1]
    mua_entry = parts.values.get("mua")
    if mua_entry is None:
        yield Issue(last.file, last.path, "missing required key 'mua' (set it in one of the files)")
    elif message := _needs_module("MUA", mua_entry.data, context.modules):
        yield Issue(mua_entry.file, mua_entry.path, message)
    if not any("mail-to" in section.data for section in parts.sections):
        yield Issue(last.file, last.path, "missing required key 'mail-to'")
    elif not parts.mail_to:
        yield Issue(last.file, (*last.path, "mail-to"), "expected at least one recipient")
    if mua_entry is not None and isinstance(mua_entry.data, str) and mua_entry.data in MUAS:
        for params in parts.params:
            yield from schema_issues(
                params.file, params.data, definition=f"mua-param-{mua_entry.data}", base=params.path
            )
    for section in parts.sections:
        yield from _finite(section.file, section.path, section.data, "delay")
    yield from _boot_id_issues(parts.values)


def _boot_id_issues(values: Mapping[str, Entry]) -> Iterator[Issue]:
    new, old = values.get("boot-id"), values.get("bootid")
    if new is not None and old is not None and new.data != old.data:
        yield Issue(
            old.file,
            old.path,
            f"'bootid' ({_json(old.data)}) contradicts 'boot-id' ({_json(new.data)})"
            f" set in {new.file}: keep one of them",
        )
