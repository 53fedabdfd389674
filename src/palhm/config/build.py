"""Building palhm.model objects from the merged, validated config.

The only place where JSON's kebab-case keys become snake_case fields. Defaults come
from schema.json. Called only when loading found no problem at all, so the data has
the types the schema promises.

Stages (doc/design.md#execs-and-pipeline-stages): `exec` shares the defined model.Exec (it is
frozen);
`exec-append` and per-use overrides make a new Exec with `records.replace`, so the
shared definition never changes; `exec-inline` is an Exec with id None.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

from palhm import model, records
from palhm.config.convert import destination_names, normalise_object_path, parse_limit, snake
from palhm.config.defaults import default_of, own_defaults
from palhm.config.merge import BootReportParts, Merged
from palhm.durations import parse_duration
from palhm.engine.guards import parse_percent
from palhm.engine.rotation import lock_periods
from palhm.values import ExitCodeSpec, parse_mode, parse_signal

_LIFTED: Final = frozenset(
    {"prefix", "nb-copy-limit", "root-size-limit"}
    | {f"keep-{unit}" for unit in ("last", "hourly", "daily", "weekly", "monthly", "yearly")}
    | {"keep-within"}
)
_OVERRIDES: Final = (("vl-stderr", "vl_stderr"), ("vl-stdout", "vl_stdout"), ("timeout", "timeout"))
_PARAM_DEFINITIONS: Final = {
    "null": "null-param",
    "localfs": "localfs-param",
    "aws-s3": "aws-s3-param",
}
_HOOK_KEYS: Final = (
    ("on-start", "on_start"),
    ("on-success", "on_success"),
    ("on-failure", "on_failure"),
    ("finally", "always"),
)

Execs = Mapping[str, model.Exec]


def build_config(source: str, merged: Merged) -> model.Config:
    """The model.Config of a merged config that passed every check."""
    execs = {exec_id: command(entry.data, "exec") for exec_id, entry in merged.exec_ids.items()}
    tasks = {task_id: task(entry.data, execs) for task_id, entry in merged.task_ids.items()}
    scalars = {key: entry.data for key, entry in merged.scalars.items()}
    metrics = scalars.get("metrics")
    return model.Config(
        source=Path(source),
        files=tuple(f.name for f in merged.files),
        modules=merged.module_names,
        nb_workers=int(scalars.get("nb-workers", _top_default("nb-workers"))),
        vl=int(scalars.get("vl", _top_default("vl"))),
        execs=MappingProxyType(execs),
        tasks=MappingProxyType(tasks),
        boot_report=boot_report(merged.boot_report) if merged.boot_report else None,
        metrics_textfile=Path(metrics["textfile"]) if isinstance(metrics, dict) else None,
    )


def _top_default(key: str) -> Any:
    from palhm.config.validate import schema

    return schema()["properties"][key]["default"]


# --------------------------------------------------------------------------- commands


def command(data: Mapping[str, Any], definition: str) -> model.Exec:
    """An exec definition (`definition` "exec") or exec-inline stage as a model.Exec."""
    timeout = data.get("timeout")
    return model.Exec(
        argv=tuple(data["argv"]),
        id=data.get("id"),
        env=_env(data.get("env")),
        ec=ExitCodeSpec.parse(data.get("ec", default_of(definition, "ec"))),
        vl_stderr=int(data.get("vl-stderr", default_of(definition, "vl-stderr"))),
        vl_stdout=int(data.get("vl-stdout", default_of(definition, "vl-stdout"))),
        timeout=float(timeout) if timeout is not None else None,
    )


def stage(data: Mapping[str, Any], execs: Execs) -> model.Exec:
    """A pipeline stage or exec routine item as the model.Exec to run for this use."""
    if data["type"] == "exec-inline":
        return command(data, "stage-exec-inline")
    base = execs[data["exec-id"]]
    changes: dict[str, Any] = {}
    if data["type"] == "exec-append":
        if data.get("argv"):
            changes["argv"] = base.argv + tuple(data["argv"])
        if data.get("env"):
            changes["env"] = MappingProxyType({**base.env, **data["env"]})
    for key, attribute in _OVERRIDES:
        if key in data:
            changes[attribute] = float(data[key]) if key == "timeout" else int(data[key])
    return records.replace(base, **changes) if changes else base


def _env(raw: Mapping[str, str] | None) -> Mapping[str, str]:
    return MappingProxyType(dict(raw)) if raw else model.EMPTY_ENV


# --------------------------------------------------------------------------- tasks


def task(data: Mapping[str, Any], execs: Execs) -> model.Task:
    if data["type"] == "routine":
        items = tuple(routine_item(item, execs) for item in data["routine"])
        return model.RoutineTask(id=data["id"], items=items, hooks=hooks(data, execs))
    return backup_task(data, execs)


def routine_item(data: Mapping[str, Any], execs: Execs) -> model.RoutineItem:
    if data["type"] == "task":
        return model.TaskRef(task_id=data["task-id"])
    if data["type"] == "builtin":
        actions = tuple(
            model.SigmaskAction(
                action=action["action"],
                signals=tuple(int(parse_signal(sig)) for sig in action["sig"]),
            )
            for action in data["param"]
        )
        return model.Builtin(builtin_id=data["builtin-id"], sigmask=actions)
    return stage(data, execs)


def backup_task(data: Mapping[str, Any], execs: Execs) -> model.BackupTask:
    all_destinations = destinations(data)
    first = all_destinations[0]
    objects = tuple(backup_object(obj, execs) for obj in data.get("objects", ()))
    groups = tuple(
        model.ObjectGroup(id=g["id"], depends=tuple(g.get("depends", ())))
        for g in data.get("object-groups", ())
    )
    return model.BackupTask(
        id=data["id"],
        backend=first.backend,
        objects=objects,
        groups=groups,
        backend_param=first.backend_param,
        prefix=first.prefix,
        retention=first.retention,
        checksum=data.get("checksum", default_of("backup-task", "checksum")),
        hooks=hooks(data, execs),
        drill=drill(data["drill"], execs) if "drill" in data else None,
        max_shrink=parse_percent(data["max-shrink"]) if "max-shrink" in data else None,
        lock_wait=float(data.get("lock-wait", default_of("backup-task", "lock-wait"))),
        destinations=all_destinations,
        require=data.get("require", default_of("backup-task", "require")),
    )


def destinations(data: Mapping[str, Any]) -> tuple[model.Destination, ...]:
    """A task's `destinations`, or its single `backend` as the one destination."""
    raw: list[Mapping[str, Any]] = list(data.get("destinations", ())) or [data]
    names = destination_names(
        [(d.get("name") if d is not data else None, d["backend"]) for d in raw]
    )
    built = []
    for name, item in zip(names, raw, strict=True):
        params: Mapping[str, Any] = item.get("backend-param", {})
        built.append(
            model.Destination(
                name=name,
                backend=item["backend"],
                backend_param=backend_param(item["backend"], params),
                prefix=prefix(params.get("prefix")),
                retention=retention(params),
            )
        )
    return tuple(built)


def backup_object(data: Mapping[str, Any], execs: Execs) -> model.BackupObject:
    alloc = data.get("alloc-size")
    return model.BackupObject(
        path=normalise_object_path(data["path"]),
        pipeline=tuple(stage(s, execs) for s in data["pipeline"]),
        group=data.get("group", default_of("backup-object", "group")),
        alloc_size=int(alloc) if alloc is not None else None,
        restore=tuple(stage(s, execs) for s in data.get("restore", ())),
        drill_restore=tuple(stage(s, execs) for s in data.get("drill", {}).get("restore", ())),
        min_size=int(data["min-size"]) if "min-size" in data else None,
        retries=int(data.get("retries", default_of("backup-object", "retries"))),
        retry_delay=float(data.get("retry-delay", default_of("backup-object", "retry-delay"))),
    )


def drill(data: Mapping[str, Any], execs: Execs) -> model.Drill:
    """A task's `drill` section. Check commands take `expect-status` as their `ec`."""
    checks = []
    for index, raw in enumerate(data.get("checks", ())):
        command = stage(raw["run"], execs)
        if "expect-status" in raw:
            command = records.replace(command, ec=ExitCodeSpec.parse(raw["expect-status"]))
        name = raw.get("name", f"check {index + 1}")
        checks.append(model.DrillCheck(name, command, raw.get("expect-output")))
    own_hooks = None
    if "on-success" in data or "on-failure" in data:
        own_hooks = model.Hooks(
            on_success=tuple(hook(h, execs) for h in data.get("on-success", ())),
            on_failure=tuple(hook(h, execs) for h in data.get("on-failure", ())),
        )
    return model.Drill(
        set_up=tuple(stage(s, execs) for s in data.get("set-up", ())),
        checks=tuple(checks),
        tear_down=tuple(stage(s, execs) for s in data.get("tear-down", ())),
        env=_env(data.get("env")),
        use_restore_pipelines=bool(data.get("use-restore-pipelines", False)),
        hooks=own_hooks,
    )


def backend_param(backend: str, params: Mapping[str, Any]) -> Mapping[str, Any]:
    """The backend's own parameters: snake_case keys, schema defaults filled in, modes
    as int; prefix and retention keys are lifted out into their own fields."""
    merged = {**own_defaults(_PARAM_DEFINITIONS[backend]), **params}
    own = {
        snake(key): parse_mode(value) if key in ("dmode", "fmode") else value
        for key, value in merged.items()
        if key not in _LIFTED
    }
    if "object-lock" in params:
        own["object_lock"] = object_lock(params["object-lock"], retention(params))
    return MappingProxyType(own)


def object_lock(raw: Mapping[str, Any], policy: model.RetentionPolicy) -> model.ObjectLock:
    """aws-s3 `object-lock`: its mode, and `period` or the periods the task's
    time-based rules give (config check refused a lock with neither)."""
    if "period" in raw:
        periods = [(f"period {raw['period']}", parse_duration(raw["period"]))]
    else:
        periods = lock_periods(policy)
    return model.ObjectLock(
        mode=raw["mode"],
        periods=tuple(period for _, period in periods),
        source=", ".join(name for name, _ in periods),
    )


def prefix(raw: Mapping[str, Any] | None) -> model.PrefixSpec:
    if not raw:
        return model.PrefixSpec()
    kind = raw["type"]
    if kind == "default":
        return model.PrefixSpec()
    return model.PrefixSpec(
        kind=kind,
        timespec=raw.get("timespec", default_of("prefix-timed", "timespec")),
        tz=raw.get("tz", default_of("prefix-timed", "tz")),
    )


def retention(params: Mapping[str, Any]) -> model.RetentionPolicy:
    keeps: dict[str, Any] = {
        snake(key): int(value)
        for key, value in params.items()
        if key.startswith("keep-") and key != "keep-within"
    }
    if "keep-within" in params:
        keeps["keep_within"] = parse_duration(params["keep-within"])
    return model.RetentionPolicy(
        nb_copy_limit=parse_limit(params.get("nb-copy-limit", "Infinity")),
        root_size_limit=parse_limit(params.get("root-size-limit", "Infinity")),
        **keeps,
    )


# --------------------------------------------------------------------------- hooks, mail


def hooks(data: Mapping[str, Any], execs: Execs) -> model.Hooks:
    lists = {
        attribute: tuple(hook(h, execs) for h in data.get(key, ())) for key, attribute in _HOOK_KEYS
    }
    return model.Hooks(**lists) if any(lists.values()) else model.NO_HOOKS


def hook(data: Mapping[str, Any], execs: Execs) -> model.Hook:
    if data["type"] not in ("ping", "mail"):
        return routine_item(data, execs)  # a command: run like a routine item
    if data["type"] == "ping":
        return model.PingHook(
            url=data["url"],
            timeout=float(data.get("timeout", default_of("hook-ping", "timeout"))),
            method=data.get("method", default_of("hook-ping", "method")),
            headers=tuple(
                (name, _header_value(value)) for name, value in data.get("headers", {}).items()
            ),
            body=data.get("body"),
            body_json=data.get("body-json"),
            retries=int(data.get("retries", default_of("hook-ping", "retries"))),
            retry_delay=float(data.get("retry-delay", default_of("hook-ping", "retry-delay"))),
        )
    return model.MailHook(
        mua=data["mua"],
        mail_to=tuple(data["mail-to"]),
        mua_param=mua_param(data["mua"], [data.get("mua-param", {})]),
        subject=data.get("subject"),
    )


def _header_value(raw: Any) -> model.HeaderValue:
    if isinstance(raw, str):
        return model.HeaderValue(value=raw)
    return model.HeaderValue(file=raw.get("file"), env=raw.get("env"))


def mua_param(mua: str, layers: list[Mapping[str, Any]]) -> Mapping[str, Any]:
    """A MUA's parameters: schema defaults, then each layer (file) in load order."""
    merged: dict[str, Any] = dict(own_defaults(f"mua-param-{mua}"))
    for layer in layers:
        merged.update(layer)
    return MappingProxyType({snake(key): value for key, value in merged.items()})


def boot_report(parts: BootReportParts) -> model.BootReport:
    values = {key: entry.data for key, entry in parts.values.items()}
    defaults = own_defaults("boot-report")

    def get(key: str) -> Any:
        return values.get(key, defaults.get(key))

    boot_id = values.get("boot-id", values.get("bootid", defaults["boot-id"]))
    return model.BootReport(
        mua=values["mua"],
        mail_to=tuple(entry.data for entry in parts.mail_to),
        mua_param=mua_param(values["mua"], [entry.data for entry in parts.params]),
        subject=get("subject"),
        header=get("header"),
        uptime_since=bool(get("uptime-since")),
        uptime=bool(get("uptime")),
        boot_id=bool(boot_id),
        boot_wait=get("boot-wait"),
        delay=float(get("delay")),
    )
