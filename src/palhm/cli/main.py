"""Command line: argument parsing, logging set-up, and the ONE exception -> exit status map.

`palhm [-q | -v...] [-f FILE] COMMAND [ARGS]` (doc/design.md#command-line, #configuration,
doc/operations.md). Every command loads
and validates the whole config before doing anything, so a config error (exit 2)
never leaves half a run behind.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import logging
import os
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, NoReturn

from palhm import __version__
from palhm.errors import (
    RESOURCE_ERRNOS,
    ConfigError,
    ExitStatus,
    PalhmError,
    UsageError,
    describe_resource_error,
)

if TYPE_CHECKING:
    from palhm.model import BackupTask, Config
    from palhm.notify.hooks import RunReport

log = logging.getLogger("palhm")

DEFAULT_CONFIG_PATHS: Final = (Path("/etc/palhm/palhm.conf"), Path("/etc/palhm/palhm.jsonc"))
DEFAULT_TASK: Final = "default"

Handler = Callable[[argparse.Namespace], None]


def _columns() -> int:
    """What shutil.get_terminal_size() says, without importing shutil (and the
    compression modules it loads) on every run: argparse asks for each argument added."""
    with contextlib.suppress(KeyError, ValueError):
        if (columns := int(os.environ["COLUMNS"])) > 0:
            return columns
    with contextlib.suppress(AttributeError, ValueError, OSError):
        return os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
    return 80


class _Wrapped(argparse.HelpFormatter):
    def __init__(self, prog: str, indent: int = 2, position: int = 24, width: int | None = None):
        super().__init__(prog, indent, position, _columns() - 2 if width is None else width)


class _Raw(argparse.RawDescriptionHelpFormatter, _Wrapped):
    pass


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as UsageError instead of exiting itself."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Wrapped)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        hint = ""
        if message.startswith("unrecognized arguments") and set(message.split()) & _GLOBAL_ONLY:
            hint = "\n(-q, -v and --version go before the command: palhm -v run TASK)"
        raise UsageError(f"{message}{hint}\n{self.format_usage().rstrip()}")


# Options given only before the command; -f and --debug are accepted on both sides.
_GLOBAL_ONLY: Final = frozenset({"-q", "--quiet", "-v", "--verbose", "-vv", "-vvv", "--version"})


def build_parser(only: str | None = None) -> _Parser:
    """The whole command line, or with `only` a parser that knows that one command
    (the others are never built: ~10 ms of start-up, most of it argparse's gettext
    look-ups; see main())."""
    parser = _Parser(
        prog="palhm",
        description="Periodic Automatic Live Host Maintenance: run routine and backup tasks.",
        epilog="Run 'palhm help COMMAND' for a command's usage.",
    )
    parser.add_argument("--version", action="version", version=f"palhm {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="print errors only")
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="more output, repeatable: each -v adds one level to the config's vl (with the"
        " default vl 3, -v shows debug messages such as why each copy is kept)",
    )
    _add_anywhere_options(parser, default=None)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    _add_commands(commands if only is None else _OneCommand(commands, only))
    summaries = {a.dest: a.help for a in commands._choices_actions}
    for name, sub in commands.choices.items():
        _add_anywhere_options(sub, default=argparse.SUPPRESS)
        sub.formatter_class = _Raw
        if sub.description is None and summaries.get(name):
            sub.description = f"{summaries[name]}."
        if sub.epilog is None:
            example = _EXAMPLES.get(name)
            sub.epilog = _EXIT_STATUS_EPILOG + (f"\n\nexample:\n  {example}" if example else "")
    return parser


class _OneCommand:
    """What `_add_commands` sees when one command is needed: add_parser builds that
    command's parser and hands a sink that ignores every argument for the others."""

    def __init__(self, commands: argparse._SubParsersAction[_Parser], name: str) -> None:
        self.commands = commands
        self.name = name

    def add_parser(self, name: str, **kwargs: Any) -> Any:
        if name == self.name:
            return self.commands.add_parser(name, **kwargs)
        return _IGNORED


class _Ignored:
    def add_argument(self, *args: Any, **kwargs: Any) -> None:
        pass

    def add_mutually_exclusive_group(self, *args: Any, **kwargs: Any) -> _Ignored:
        return self

    add_argument_group = add_mutually_exclusive_group

    def set_defaults(self, **kwargs: Any) -> None:
        pass


_IGNORED: Final = _Ignored()


def _command_word(argv: Sequence[str]) -> str | None:
    """The command named in argv (the first word that is not an option or -f's value)."""
    words = iter(argv)
    for word in words:
        if word in ("-f", "--file"):
            next(words, None)
        elif word == "--":
            return next(words, None)
        elif not word.startswith("-") or word == "-":
            return word
    return None


_FILE_HELP: Final = (
    "config file (default: /etc/palhm/palhm.conf, else /etc/palhm/palhm.jsonc);"
    " builtin:demo and builtin:sample name the packaged configs"
)
_EXIT_STATUS_EPILOG: Final = (
    "exit status: 0 success; 1 failure at run time (a failed task is rolled back);\n"
    "2 usage or config error (nothing was run); 130/143 interrupted by SIGINT/SIGTERM"
)
# One example per command for `palhm help COMMAND` and the man page.
_EXAMPLES: Final = {
    "run": "palhm -v run backup        # run the task 'backup'; palhm run -n backup: plan only",
    "config": "palhm -f /etc/palhm/palhm.conf config check",
    "schema": "palhm schema > palhm.schema.json",
    "mods": "palhm mods",
    "boot-report": "palhm boot-report          # from palhm-boot-report.service",
    "help": "palhm help run",
    "list": "palhm list backup --json",
    "verify": "palhm verify backup latest",
    "get": "palhm get backup latest etc.tar.zst > etc.tar.zst",
    "init": "palhm init /etc/palhm/palhm.conf",
    "replicate": "palhm replicate backup --from local --to offsite",
    "rotate": "palhm rotate -n backup      # what rotation would remove; without -n: remove",
}


def _add_anywhere_options(parser: argparse.ArgumentParser, *, default: object) -> None:
    """-f and --debug, accepted before and after the command (`palhm run -f FILE`).
    After the command they default to SUPPRESS so they never undo the ones given
    before it; a command that defines its own -f keeps it."""
    taken = parser._option_string_actions
    if "-f" not in taken and "--file" not in taken:
        parser.add_argument("-f", "--file", metavar="FILE", default=default, help=_FILE_HELP)
    if "--debug" not in taken:
        parser.add_argument(
            "--debug",
            action="store_true",
            default=default if default is argparse.SUPPRESS else False,
            help="print a Python traceback with an error (for bug reports)",
        )


def _add_commands(commands: argparse._SubParsersAction[_Parser] | _OneCommand) -> None:
    run = commands.add_parser("run", help="run a task (default: the task 'default')")
    run.add_argument(
        "task", nargs="?", default="", help="task to run (default: 'default'; see config tasks)"
    )
    run.add_argument("-n", "--dry-run", action="store_true", help="print the plan and run nothing")
    run.add_argument(
        "--json", action="store_true", help="print a JSON summary of the run on stdout"
    )
    _add_dest(run, "with --dry-run: plan for this destination only (default: every one)")
    config = commands.add_parser("config", help="validate and print the effective config")
    config.add_argument(
        "action",
        nargs="?",
        choices=("check", "show", "tasks"),
        help="check: validate, and warn about commands or libraries this host lacks;"
        " show: print the effective config as JSON; tasks: print the task ids",
    )
    commands.add_parser("schema", help="print the config's JSON Schema (for editors)")
    init = commands.add_parser(
        "init", help="write a commented starter config for this host, then check it"
    )
    init.add_argument(
        "target", nargs="?", help="file to write (default: -f FILE, else /etc/palhm/palhm.conf)"
    )
    init.add_argument("--force", action="store_true", help="replace an existing file")
    init.add_argument("--root", help="backup root (default: /var/backups/palhm)")
    init.add_argument("--mail-to", help="who gets failure and boot report mails (default: root)")
    commands.add_parser("mods", help="list the modules a config may name in 'modules'")
    commands.add_parser("boot-report", help="compose and send the boot report mail")
    help_ = commands.add_parser("help", help="usage, or one command's usage")
    help_.add_argument("topic", nargs="?", help="command name")
    list_ = commands.add_parser("list", help="list the copies of a backup task")
    list_.add_argument("task", help="backup task id")
    list_.add_argument("--json", action="store_true", help="print JSON")
    _add_dest(list_, "list this destination only (default: every destination)")
    verify = commands.add_parser("verify", help="re-read a copy and compare it with its manifest")
    verify.add_argument("task", help="backup task id")
    verify.add_argument("prefix", nargs="?", default="latest", help="copy (default: latest)")
    _add_dest(verify)
    for name, verb in (
        ("pin", "never rotate a copy away"),
        ("unpin", "let rotation remove a copy again"),
    ):
        pin = commands.add_parser(name, help=f"{verb} (shown in 'list')")
        pin.add_argument("task", help="backup task id")
        pin.add_argument("prefix", help="copy prefix, or 'latest'")
        _add_dest(pin)
    get = commands.add_parser("get", help="stream one object of a copy to stdout")
    get.add_argument("task", help="backup task id")
    get.add_argument("prefix", help="copy prefix, or 'latest'")
    get.add_argument("path", help="object path")
    _add_dest(get)
    restore = commands.add_parser(
        "restore", help="restore a copy through each object's restore pipeline"
    )
    restore.add_argument("task", help="backup task id")
    restore.add_argument("prefix", help="copy prefix, or 'latest'")
    restore.add_argument("paths", nargs="*", metavar="PATH", help="objects (default: all)")
    _add_dest(restore)
    restore.add_argument(
        "-n", "--dry-run", action="store_true", help="print the plan and run nothing"
    )
    restore.add_argument(
        "--to", metavar="DIR", help="write objects without a restore pipeline as files in DIR"
    )
    restore.add_argument(
        "--verify-first",
        action="store_true",
        help="check each object against the manifest before feeding it to its pipeline",
    )
    rotate = commands.add_parser(
        "rotate",
        help="remove the copies the retention rules drop, without a backup"
        " (from a host with delete rights)",
    )
    rotate.add_argument("task", help="backup task id")
    rotate.add_argument(
        "-n", "--dry-run", action="store_true", help="print the plan and remove nothing"
    )
    _add_dest(rotate, "rotate this destination only (default: every destination)")
    drill = commands.add_parser("drill", help="restore the newest copy into a throwaway target")
    drill.add_argument("task", help="backup task id")
    drill.add_argument("-n", "--dry-run", action="store_true", help="print the plan only")
    _add_dest(drill)
    _add_replicate(commands)


def _add_replicate(commands: argparse._SubParsersAction[_Parser] | _OneCommand) -> None:
    replicate = commands.add_parser(
        "replicate", help="copy complete copies one destination has and another lacks"
    )
    replicate.add_argument("task", help="backup task id (with several destinations)")
    replicate.add_argument(
        "--from",
        dest="source",
        metavar="NAME",
        help="destination to copy from (default: the first)",
    )
    replicate.add_argument(
        "--to", dest="target", metavar="NAME", help="destination to fill (default: every other one)"
    )
    replicate.add_argument(
        "--all",
        action="store_true",
        help="every missing copy (default: only the newest copy the target lacks)",
    )
    replicate.add_argument(
        "-n", "--dry-run", action="store_true", help="print what would be copied, copy nothing"
    )


def _add_dest(parser: Any, help: str | None = None) -> None:
    parser.add_argument(
        "--dest",
        metavar="NAME",
        help=help or "the task's destination to use (default: its first destination)",
    )


# --------------------------------------------------------------------------- helpers


def _config_path(args: argparse.Namespace) -> str:
    if args.file:
        return str(args.file)
    for candidate in DEFAULT_CONFIG_PATHS:
        if candidate.exists():
            return str(candidate)
    tried = " or ".join(str(p) for p in DEFAULT_CONFIG_PATHS)
    raise UsageError(f"no config file: tried {tried} (use -f FILE)")


def _verbosity(args: argparse.Namespace, config_vl: int) -> int:
    if args.quiet:
        return 1
    return config_vl + int(args.verbose)


def _setup_logging(verbosity: int) -> None:
    """vl: 0 critical, 1 error, 2 warning, 3 info, 4+ debug (doc/design.md#configuration)."""
    levels = [logging.CRITICAL, logging.ERROR, logging.WARNING, logging.INFO]
    level = levels[verbosity] if verbosity < len(levels) else logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("palhm: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def _load(args: argparse.Namespace) -> tuple[Config, int]:
    """Load and validate the config, then set up logging at the effective verbosity."""
    from palhm.config import load_config

    config = load_config(_config_path(args))
    verbosity = _verbosity(args, config.vl)
    _setup_logging(verbosity)
    return config, verbosity


def _task_id(config_tasks: Sequence[str], wanted: str) -> str:
    task_id = wanted or DEFAULT_TASK
    if task_id not in config_tasks:
        known = ", ".join(sorted(config_tasks)) or "none"
        raise UsageError(f"unknown task '{task_id}' (known: {known})")
    return task_id


# --------------------------------------------------------------------------- commands


def cmd_run(args: argparse.Namespace) -> None:
    from palhm.cli import runner
    from palhm.engine import interrupts, strays

    config, verbosity = _load(args)
    task_id = _task_id(list(config.tasks), args.task)
    if args.dry_run:
        sys.stdout.write(runner.plan_text(config, task_id, destination=args.dest))
        return
    interrupts.install_handlers()
    on_report = _print_json if args.json else None
    with strays.run_record():  # stops what a SIGKILLed run left; records this run's
        runner.run_task(config, task_id, verbosity=verbosity, on_report=on_report)
    interrupts.check()


def _print_json(report: RunReport) -> None:
    json.dump(report.document(), sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")
    sys.stdout.flush()


def cmd_config(args: argparse.Namespace) -> None:
    from palhm.config import load_effective

    config, effective = load_effective(_config_path(args))
    if args.action == "tasks":
        sys.stdout.writelines(f"{task_id}\n" for task_id in config.tasks)
        return
    if args.action == "check":
        from palhm.config.host import host_warnings

        for warning in [] if args.quiet else host_warnings(config, effective):
            print(f"palhm: warning: {warning}", file=sys.stderr)
        if not args.quiet:
            _config_warnings(config)
        if not args.quiet:
            print(f"{config.source}: OK ({len(config.tasks)} tasks, {len(config.execs)} execs)")
        return
    json.dump(effective, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")


def _config_warnings(config: Config) -> None:
    """What is valid but likely wrong (e.g. a storage class the S3 store lacks)."""
    from palhm.model import BackupTask

    for task in config.tasks.values():
        if not isinstance(task, BackupTask):
            continue
        for destination in task.all_destinations():
            if destination.backend == "aws-s3":
                from palhm.backends.s3.backend import storage_class_warnings

                for warning in storage_class_warnings(task.id, destination.backend_param):
                    print(f"palhm: warning: {warning}", file=sys.stderr)


def cmd_schema(args: argparse.Namespace) -> None:
    from palhm.config import schema_text

    sys.stdout.write(schema_text())


def cmd_init(args: argparse.Namespace) -> None:
    from palhm.ops.init import init

    target = Path(args.target or args.file or DEFAULT_CONFIG_PATHS[0])
    init(target, force=args.force, root=args.root, mail_to=args.mail_to)
    print(f"palhm: wrote {target}", file=sys.stderr)
    args.file, args.action = str(target), "check"
    cmd_config(args)


def cmd_mods(args: argparse.Namespace) -> None:
    from palhm.modules import MODULES, missing_libraries

    for info in MODULES.values():
        provides = ", ".join([*(f"backend {b}" for b in info.backends), *info.muas])
        missing = missing_libraries(info)
        state = "available" if not missing else f"UNAVAILABLE: {', '.join(missing)} not installed"
        print(f"{info.name}\t{state}\t{info.description} (provides: {provides})")


def cmd_boot_report(args: argparse.Namespace) -> None:
    from palhm.bootreport import send_boot_report

    config, verbosity = _load(args)
    if config.boot_report is None:
        raise ConfigError.single(str(config.source), "", "no 'boot-report' section in the config")
    send_boot_report(config.boot_report, verbosity=verbosity)


def _backup_task(config: Config, args: argparse.Namespace) -> BackupTask:
    """The backup task named on the command line, seen through its `--dest`."""
    from palhm.ops import operations

    task = operations.backup_task(config, _task_id(list(config.tasks), args.task))
    return operations.at_destination(task, args.dest)


def cmd_list(args: argparse.Namespace) -> None:
    from palhm.ops import operations

    config, _ = _load(args)
    task = operations.backup_task(config, _task_id(list(config.tasks), args.task))
    if args.dest is None and len(task.all_destinations()) > 1:
        sys.stdout.write(operations.list_all_text(config, task, as_json=args.json))
        return
    task = operations.at_destination(task, args.dest)
    sys.stdout.write(operations.list_text(config, task, as_json=args.json))


def cmd_verify(args: argparse.Namespace) -> None:
    from palhm.ops import operations

    config, verbosity = _load(args)
    task = _backup_task(config, args)
    sys.stdout.write(operations.verify(config, task, args.prefix))


def cmd_get(args: argparse.Namespace) -> None:
    from palhm.ops import operations

    config, _ = _load(args)
    task = _backup_task(config, args)
    operations.get_object(config, task, args.prefix, args.path, sys.stdout.buffer)


def cmd_restore(args: argparse.Namespace) -> None:
    from palhm.engine import interrupts
    from palhm.ops import restore

    config, verbosity = _load(args)
    task = _backup_task(config, args)
    to_dir = Path(args.to) if args.to else None
    backend, plan = restore.plan_restore(config, task, args.prefix, args.paths, to_dir=to_dir)
    if args.dry_run:
        sys.stdout.write(restore.plan_text(plan, to_dir))
        return
    interrupts.install_handlers()
    try:
        lines = restore.run_restore(
            backend,
            plan,
            to_dir=to_dir,
            verbosity=verbosity,
            verify_first=args.verify_first,
            cancel=interrupts.CANCEL,
        )
    finally:
        interrupts.check()  # a signal: exit 130/143 rather than the "cancelled" error
    if not args.quiet:
        sys.stdout.write(restore.report_text(plan, lines))


def cmd_drill(args: argparse.Namespace) -> None:
    from palhm.engine import interrupts
    from palhm.ops import drill

    config, verbosity = _load(args)
    task = _backup_task(config, args)
    if args.dry_run:
        sys.stdout.write(drill.plan_text(config, task))
        return
    interrupts.install_handlers()
    try:
        report = drill.run_drill(config, task, verbosity=verbosity, cancel=interrupts.CANCEL)
    finally:
        interrupts.check()  # a signal: exit 130/143 rather than the "cancelled" error
    if not args.quiet:
        sys.stdout.write(report)


def cmd_replicate(args: argparse.Namespace) -> None:
    from palhm.engine import interrupts
    from palhm.ops import operations, replicate

    config, _ = _load(args)
    task = operations.backup_task(config, _task_id(list(config.tasks), args.task))
    if not args.dry_run:
        interrupts.install_handlers()
    try:
        report = replicate.replicate(
            config,
            task,
            source=args.source,
            target=args.target,
            every_copy=args.all,
            dry_run=args.dry_run,
        )
    finally:
        interrupts.check()
    if not args.quiet:
        sys.stdout.write(report)


def cmd_rotate(args: argparse.Namespace) -> None:
    from palhm.engine import interrupts
    from palhm.ops import operations
    from palhm.ops.rotate import rotate

    config, _ = _load(args)
    task = operations.backup_task(config, _task_id(list(config.tasks), args.task))
    # every destination without --dest: each has its own copies and retention
    chosen = [args.dest] if args.dest is not None else [d.name for d in task.all_destinations()]
    if not args.dry_run:
        interrupts.install_handlers()
    try:
        for name in chosen:
            report = rotate(config, operations.at_destination(task, name), dry_run=args.dry_run)
            if not args.quiet:
                sys.stdout.write(report)
    finally:
        interrupts.check()  # a signal: exit 130/143 once the removal in progress ended


def cmd_pin(args: argparse.Namespace) -> None:
    from palhm.ops import operations

    config, _ = _load(args)
    task = _backup_task(config, args)
    sys.stdout.write(operations.pin(config, task, args.prefix, pinned=args.command == "pin"))


COMMANDS: Final[dict[str, Handler]] = {
    "pin": cmd_pin,
    "unpin": cmd_pin,
    "run": cmd_run,
    "config": cmd_config,
    "schema": cmd_schema,
    "init": cmd_init,
    "mods": cmd_mods,
    "boot-report": cmd_boot_report,
    "list": cmd_list,
    "verify": cmd_verify,
    "get": cmd_get,
    "restore": cmd_restore,
    "drill": cmd_drill,
    "replicate": cmd_replicate,
    "rotate": cmd_rotate,
}


def _help(parser: _Parser, topic: str | None) -> None:
    if topic is None:
        parser.print_help()
        return
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    sub = subparsers.choices.get(topic)
    if sub is None:
        known = ", ".join(subparsers.choices)
        raise UsageError(f"no command '{topic}' (commands: {known})")
    sub.print_help()


def _dispatch(parser: _Parser, args: argparse.Namespace) -> None:
    if getattr(args, "file", None) is None:
        args.file = None
    if args.quiet and args.verbose:
        raise UsageError("-q and -v cannot be used together")
    if args.command is None:
        parser.print_help(sys.stderr)
        raise UsageError("no command given")
    if args.command == "help":
        _help(parser, args.topic)
        return
    COMMANDS[args.command](args)


# --------------------------------------------------------------------------- main


def _report(error: PalhmError) -> None:
    if isinstance(error, ConfigError):
        for line in error.lines():
            print(line, file=sys.stderr)
        return
    prefix = "palhm: usage: " if isinstance(error, UsageError) else "palhm: error: "
    lines = error.lines()
    print(prefix + lines[0], file=sys.stderr)
    for line in lines[1:]:
        print(prefix + line if error.every_line_an_error else line, file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: returns the exit status (doc/design.md#command-line).

    The only exception -> status map."""
    words = sys.argv[1:] if argv is None else list(argv)
    command = _command_word(words)
    # help and unknown words need every command (usage, "invalid choice" lists)
    parser = build_parser(command if command in COMMANDS and command != "help" else None)
    debug = False
    if sys.stdout is None:  # started with stdout closed (`>&-`): writing must fail loudly
        sys.stdout = open(os.devnull)  # noqa: SIM115 - read-only: every write raises OSError
    try:
        args = parser.parse_args(argv)
        debug = bool(args.debug)
        _dispatch(parser, args)
        sys.stdout.flush()  # a full disk or a closed stdout is reported here, not at exit
    except PalhmError as error:
        if debug:
            import traceback  # only with --debug: its import is not free

            traceback.print_exc()
        _report(error)
        return int(error.exit_status)
    except KeyboardInterrupt:
        print("palhm: interrupted", file=sys.stderr)
        return int(ExitStatus.INTERRUPTED)
    except BrokenPipeError:
        # stdout closed early (`palhm get ... | head`): not palhm's failure to report
        sys.stderr.close()
        return int(ExitStatus.FAILURE)
    except OSError as error:
        if error.errno in RESOURCE_ERRNOS:  # a limit reached anywhere (an import, a pipe)
            print(f"palhm: error: {describe_resource_error(error)}", file=sys.stderr)
            return int(ExitStatus.FAILURE)
        if not _output_error(error):
            return _internal_error(error, debug=debug)
        reason = error.strerror or "standard output is closed"
        print(f"palhm: error: cannot write the output: {reason}", file=sys.stderr)
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - drop what is left unwritten
        return int(ExitStatus.FAILURE)
    except Exception as error:  # a bug: one readable line, the traceback with --debug
        return _internal_error(error, debug=debug)
    return int(ExitStatus.OK)


def _internal_error(error: Exception, *, debug: bool) -> int:
    if debug:
        import traceback  # only with --debug: its import is not free

        traceback.print_exc()
    print(f"palhm: internal error: {type(error).__name__}: {error}", file=sys.stderr)
    print("palhm: run again with --debug for a traceback", file=sys.stderr)
    return int(ExitStatus.FAILURE)


def _output_error(error: OSError) -> bool:
    """Whether an OSError that reached main is about palhm's own output (stdout on a
    full disk, closed, unwritable); the commands' own I/O errors are PalhmErrors."""
    import io

    unwritable = isinstance(error, io.UnsupportedOperation)
    return unwritable or error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EBADF, errno.EIO)


def entry() -> NoReturn:
    """The `palhm` command (console script, `python -m palhm`): main(), then exit
    without the interpreter's teardown (doc/design.md#start-up).

    Freeing ~200 modules one object at a time costs 10-15 ms of every run and does
    nothing palhm needs: main() has flushed stdout and reported a failure to write
    it; each file palhm writes is closed (and fsynced) before its command ends; locks
    and descriptors go with the process. The usual exit is kept when a non-daemon
    thread is still running (the interpreter waits for it) and in development mode
    (`python -X dev`: unclosed-resource warnings come at teardown).
    """
    status = main()
    if sys.flags.dev_mode or any(
        thread.is_alive() and not thread.daemon and thread is not threading.main_thread()
        for thread in threading.enumerate()
    ):
        sys.exit(status)
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # closed or broken: nothing left to say
            stream.flush()
    os._exit(status)


if __name__ == "__main__":
    entry()
