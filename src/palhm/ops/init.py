"""`palhm init`: write a commented starter config for this host, then check it.

What it looks at (all local, nothing is run but connect() to local sockets):
- the mail program: /usr/bin/mailx, else mailx, s-nail or mail on PATH; without one,
  an SMTP server answering on 127.0.0.1:25; without that, the `stdout` MUA;
- database servers that answer on their usual local sockets: MariaDB/MySQL
  (/run/mysqld/mysqld.sock), PostgreSQL (/run/postgresql/.s.PGSQL.5432), OpenLDAP
  (/run/slapd/ldapi); each one found gets a dump object;
- the backup root: /var/backups/palhm (the path the shipped systemd unit may write).

On a terminal it asks for the root and the mail recipient (Enter keeps the default);
otherwise it asks nothing. It never overwrites a file unless --force is given, writes
the new file with mode 0640 through a temporary file and a rename, and then runs the
same check as `palhm config check` on it.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Final, TextIO

from palhm.errors import UsageError
from palhm.records import field, record

DEFAULT_ROOT: Final = "/var/backups/palhm"
DEFAULT_MAIL_TO: Final = "root"
CORE_INCLUDE: Final = "conf.d/core.json"
SMTP_ADDRESS: Final = ("127.0.0.1", 25)
CONNECT_TIMEOUT: Final = 1.0


@record
class Database:
    name: str  # object path stem and comment label
    socket: str
    argv: tuple[str, ...]
    comment: str


DATABASES: Final = (
    Database(
        "mariadb",
        "/run/mysqld/mysqld.sock",
        ("mysqldump", "--all-databases", "--single-transaction", "--routines", "--events"),
        "MariaDB/MySQL answers on /run/mysqld/mysqld.sock: root logs in over the socket",
    ),
    Database(
        "postgresql",
        "/run/postgresql/.s.PGSQL.5432",
        ("/usr/sbin/runuser", "-u", "postgres", "--", "pg_dumpall"),
        "PostgreSQL answers on /run/postgresql: pg_dumpall as the postgres user",
    ),
    Database(
        "openldap",
        "/run/slapd/ldapi",
        ("slapcat", "-n", "1"),
        "OpenLDAP answers on /run/slapd/ldapi: slapcat of the first database",
    ),
)


@record(frozen=False)
class Host:
    """What init found on this host."""

    mailx: str | None = None
    smtp: bool = False
    databases: list[Database] = field(default_factory=list)


def socket_answers(path: str | tuple[str, int]) -> bool:
    """Whether something accepts a connection on a UNIX socket path or TCP address."""
    family = socket.AF_UNIX if isinstance(path, str) else socket.AF_INET
    if isinstance(path, str) and not os.path.exists(path):
        return False
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.settimeout(CONNECT_TIMEOUT)
            sock.connect(path)
    except OSError:
        return False
    return True


def detect(answers: Callable[[str | tuple[str, int]], bool] = socket_answers) -> Host:
    from palhm.notify.mua.mailx import DEFAULT_EXEC, find_exec

    host = Host()
    mailx = find_exec(None)
    host.mailx = mailx if mailx != DEFAULT_EXEC or os.path.exists(mailx) else None
    host.smtp = host.mailx is None and answers(SMTP_ADDRESS)
    host.databases = [db for db in DATABASES if answers(db.socket)]
    return host


def _program(name: str) -> str:
    """`name` as an absolute path when it is on PATH (configs name programs by path)."""
    return shutil.which(name) or name


def render(host: Host, *, root: str, mail_to: str, include: str) -> str:
    """The config text: JSONC with a comment on every choice."""
    q = json.dumps
    lines = [
        "// palhm config written by `palhm init`. Check it with `palhm config check`,",
        "// see what a run would do with `palhm run -n`, and read palhm.conf(5).",
        "{",
        "  // tar, compressors, package lists ... as ready-made execs",
        f"  {q('include')}: [{q(include)}],",
        "  // 3 = info: progress and rotation decisions; cron: `palhm -q` prints errors only",
        '  "vl": 3,',
        '  "tasks": [',
        "    {",
        '      // `palhm run` with no task runs "default"',
        '      "id": "default",',
        '      "type": "routine",',
        '      "routine": [{ "type": "task", "task-id": "backup" }],',
        "    },",
        "    {",
        '      "id": "backup",',
        '      "type": "backup",',
        '      "backend": "localfs",',
        '      "backend-param": {',
        "        // an absolute path: cwd is / under systemd and $HOME under cron",
        f'        "root": {q(root)},',
        '        "dmode": "0750",',
        '        "fmode": "0640",',
        '        "nb-copy-limit": 7,  // keep 7 copies, the new one included',
        "      },",
        '      "objects": [',
        "        {",
        '          "path": "meta/os-release",',
        '          "pipeline": [{ "type": "exec", "exec-id": "os-release" }],',
        "        },",
    ]
    if shutil.which("dpkg-query"):
        lines += [
            "        {",
            '          "path": "meta/packages.zst",',
            '          "pipeline": [',
            '            { "type": "exec", "exec-id": "dpkg-list-installed" },',
            '            { "type": "exec", "exec-id": "filter-zstd-plain" },',
            "          ],",
            "        },",
        ]
    for db in host.databases:
        argv = [_program(a) if i == 0 or a in ("pg_dumpall",) else a for i, a in enumerate(db.argv)]
        lines += [
            f"        // {db.comment}",
            "        {",
            f'          "path": {q(f"db/{db.name}.zst")},',
            '          "pipeline": [',
            f'            {{ "type": "exec-inline", "argv": {json.dumps(argv)} }},',
            '            { "type": "exec", "exec-id": "filter-zstd-parallel" },',
            "          ],",
            "        },",
        ]
    lines += [
        "        {",
        '          "path": "etc.tar.zst",',
        '          "pipeline": [',
        '            { "type": "exec-append", "exec-id": "tar", "argv": ["-C", "/", "etc"] },',
        '            { "type": "exec", "exec-id": "filter-zstd-parallel" },',
        "          ],",
        "        },",
        "      ],",
        f"      {_hook(host, mail_to)}",
        "    },",
        "  ],",
        "  // `palhm boot-report` (palhm-boot-report.service) mails this once per boot",
        f'  "boot-report": {{ {_mua(host)}, "mail-to": [{q(mail_to)}] }},',
        "}",
    ]
    return "\n".join(lines) + "\n"


def _mua(host: Host) -> str:
    if host.mailx:
        return f'"mua": "mailx", "mua-param": {{ "exec": {json.dumps(host.mailx)} }}'
    if host.smtp:
        return '"mua": "smtp", "mua-param": { "host": "127.0.0.1", "port": 25 }'
    return '"mua": "stdout"  /* no mailx and no SMTP server on 127.0.0.1:25 found */'


def _hook(host: Host, mail_to: str) -> str:
    return (
        f'"on-failure": [{{ "type": "mail", {_mua(host)}, "mail-to": [{json.dumps(mail_to)}] }}],'
    )


def _ask(prompt: str, default: str, stdin: TextIO, stdout: TextIO) -> str:
    stdout.write(f"{prompt} [{default}]: ")
    stdout.flush()
    answer = stdin.readline().strip()
    return answer or default


def default_include(target: Path) -> str:
    """conf.d/core.json next to the new file when it is there, else the packaged one."""
    if (target.parent / CORE_INCLUDE).is_file():
        return CORE_INCLUDE
    return "builtin:" + CORE_INCLUDE


def write_config(target: Path, text: str, *, force: bool) -> None:
    if target.exists() and not force:
        raise UsageError(f"{target} exists: not overwritten (use --force to replace it)")
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
    temporary = target.with_name(f".{target.name}.palhm-init.{os.getpid()}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o640)
    try:
        with open(fd, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def init(
    target: Path,
    *,
    force: bool = False,
    root: str | None = None,
    mail_to: str | None = None,
    stdin: TextIO = sys.stdin,
    stdout: TextIO = sys.stdout,
) -> Host:
    """Write the starter config to `target` (asking on a terminal), return what was found."""
    if target.exists() and not force:
        raise UsageError(f"{target} exists: not overwritten (use --force to replace it)")
    host = detect()
    interactive = stdin.isatty()
    if root is None:
        root = _ask("backup root", DEFAULT_ROOT, stdin, stdout) if interactive else DEFAULT_ROOT
    if mail_to is None:
        mail_to = (
            _ask("mail reports to", DEFAULT_MAIL_TO, stdin, stdout)
            if interactive
            else DEFAULT_MAIL_TO
        )
    if not os.path.isabs(root):
        raise UsageError(f"backup root '{root}' is relative: give an absolute path")
    text = render(host, root=root, mail_to=mail_to, include=default_include(target))
    write_config(target, text, force=force)
    return host
