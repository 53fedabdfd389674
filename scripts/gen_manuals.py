"""Generate the man pages and shell completions from palhm's one argparse parser
(palhm.cli.main.build_parser) and its config schema (src/palhm/config/schema.json).

Nothing here is written by hand per command: a command added to cli.py appears in
palhm(1) and in every completion the next time this runs (at build time: `make manuals`,
`make deb`, and the wheel build through setup.py).

    palhm.1        argparse-manpage (build_manpages.manpage.Manpage), plus the
                   sections argparse does not know (commands, exit status, files)
    palhm.conf.5   every key of the schema with its type, default and description
    palhm.bash     shtab, plus task-id completion from `palhm config tasks`
    _palhm         shtab (zsh), likewise
    palhm.fish     written here from the parser (shtab has no fish support)

Usage:
    python3 scripts/gen_manuals.py OUTDIR
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

REPO: Final = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from palhm import __version__  # noqa: E402
from palhm.cli.main import build_parser  # noqa: E402

SCHEMA_PATH: Final = REPO / "src" / "palhm" / "config" / "schema.json"
# positionals with this dest complete to the task ids of the config in use
TASK_DEST: Final = "task"

BASH_PREAMBLE: Final = r"""
# task ids of the config named by -f/--file on the command line (else the default)
_palhm_task_ids() {
  local i file=()
  for ((i = 1; i < ${#COMP_WORDS[@]} - 1; i++)); do
    case "${COMP_WORDS[i]}" in
      -f | --file) file=(-f "${COMP_WORDS[i + 1]}") ;;
    esac
  done
  compgen -W "$(palhm "${file[@]}" config tasks 2>/dev/null)" -- "$1"
}
"""

ZSH_PREAMBLE: Final = r"""
# task ids of the config named by -f/--file on the command line (else the default)
_palhm_task_ids() {
  local -a file ids
  local i
  for ((i = 2; i < CURRENT; i++)); do
    [[ ${words[i]} == (-f|--file) ]] && file=(-f "${words[i + 1]}")
  done
  ids=(${(f)"$(palhm $file config tasks 2>/dev/null)"})
  compadd -a ids
}
"""


# --------------------------------------------------------------------------- parser


def parser_with_completions() -> argparse.ArgumentParser:
    """The CLI parser, its task positionals marked for shtab's task-id completion and
    its file options for file-name completion."""
    import shtab

    parser = build_parser()
    for sub in [parser, *subcommands(parser).values()]:
        for action in sub._actions:
            if action.dest == TASK_DEST and not action.option_strings:
                action.complete = {"bash": "_palhm_task_ids", "zsh": "_palhm_task_ids"}  # type: ignore[attr-defined]
            elif action.dest == "file":
                action.complete = shtab.FILE  # type: ignore[attr-defined]
    return parser


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def summaries(parser: argparse.ArgumentParser) -> dict[str, str]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return {a.dest: a.help or "" for a in action._choices_actions}
    return {}


# --------------------------------------------------------------------------- palhm(1)


def roff_escape(text: str) -> str:
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\n".join(
        "\\&" + line if line.startswith((".", "'")) else line for line in text.split("\n")
    )


def examples_section(parser: argparse.ArgumentParser) -> str:
    """The example of each command's `palhm help COMMAND` (the epilog after "example:")."""
    lines: list[str] = []
    for name, sub in subcommands(parser).items():
        example = (sub.epilog or "").partition("example:\n")[2].strip()
        if example:
            lines += [".TP", f".B palhm {roff_escape(name)}", ".nf", roff_escape(example), ".fi"]
    return "\n".join(lines)


EXIT_STATUS: Final = """\
.TP
.B 0
success
.TP
.B 1
a task failed at run time (its copy rolled back; no existing copy lost),
or list, verify or get found a problem
.TP
.B 2
usage or config error: nothing was run
.TP
.B 130, 143
interrupted by SIGINT or SIGTERM, after clean\\-up"""

FILES: Final = """\
.TP
.I /etc/palhm/palhm.conf
the config read without \\-f (else /etc/palhm/palhm.jsonc); see palhm.conf(5)
.TP
.I /etc/palhm/conf.d/core.json
ready\\-made exec definitions (tar, compressors, package lists) to include
.TP
.I /usr/share/doc/palhm/examples/
example configs for MariaDB, PostgreSQL, OpenLDAP, DNSSEC checks, and a crontab"""


def man_palhm() -> str:
    from build_manpages.manpage import Manpage

    parser = build_parser()
    parser.man_short_description = "periodic automatic live host maintenance"  # type: ignore[attr-defined]
    page = str(Manpage(parser))
    # argparse-manpage renders the options of palhm and of each command; examples, exit
    # statuses and files follow as sections of their own (raw roff, any version)
    extra = [
        ".SH EXAMPLES",
        examples_section(parser),
        ".SH EXIT STATUS",
        EXIT_STATUS,
        ".SH FILES",
        FILES,
        ".SH SEE ALSO",
        "palhm.conf(5), systemd.timer(5), crontab(5)",
    ]
    header, _, body = page.partition("\n")
    header = f'.TH PALHM 1 "" "palhm {__version__}" "User Commands"'
    return header + "\n" + body.rstrip("\n") + "\n" + "\n".join(extra) + "\n"


# --------------------------------------------------------------------------- palhm.conf(5)


def schema_entries(node: dict[str, Any], path: str, defs: dict[str, Any]) -> Iterator[str]:
    for key, spec in node.get("properties", {}).items():
        spec = resolve(spec, defs)
        kind = spec.get("type", "")
        if isinstance(kind, list):
            kind = " or ".join(kind)
        default = f" (default: {json.dumps(spec['default'])})" if "default" in spec else ""
        description = spec.get("description", "")
        yield f".TP\n.B {roff_escape(path + key)}\n{roff_escape(str(kind) + default)}"
        if description:
            yield roff_escape(description)


def resolve(spec: Any, defs: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(spec, dict):
        return {}  # `true`: any value (described by its parent)
    ref = spec.get("$ref", "")
    if ref.startswith("#/definitions/"):
        return {
            **defs[ref.removeprefix("#/definitions/")],
            **{k: v for k, v in spec.items() if k != "$ref"},
        }
    return spec


def man_conf() -> str:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    defs = schema.get("definitions", {})
    lines = [
        f'.TH PALHM.CONF 5 "" "palhm {__version__}" "File Formats"',
        ".SH NAME",
        "palhm.conf \\- palhm configuration file",
        ".SH DESCRIPTION",
        roff_escape(
            "/etc/palhm/palhm.conf is JSON with comments (JSONC): // and /* */ comments and"
            " trailing commas are allowed. include names other files, resolved from the"
            " directory of the file naming them. palhm config check validates a config and"
            " warns about commands this host lacks; palhm config show prints it merged with"
            " every default; palhm schema prints the JSON Schema this page is made from."
            ' File modes are strings ("0640"): JSON has no octal numbers. A relative'
            " backend root is resolved from palhm's working directory, which is / under"
            " systemd and the home directory under cron: write absolute roots."
        ),
        ".SH TOP-LEVEL KEYS",
        *schema_entries(schema, "", defs),
    ]
    for name, node in defs.items():
        if node.get("properties"):
            lines += [f".SS {roff_escape(name)}", *schema_entries(node, "", defs)]
    lines += [".SH SEE ALSO", "palhm(1)"]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- completions


def shtab_script(shell: str) -> str:
    import shtab

    preamble = BASH_PREAMBLE if shell == "bash" else ZSH_PREAMBLE
    text: str = shtab.complete(parser_with_completions(), shell=shell, preamble=preamble)
    return text


def fish_script() -> str:
    parser = build_parser()
    commands = subcommands(parser)
    texts = summaries(parser)
    names = " ".join(commands)
    lines = [
        "# fish completion for palhm (generated by scripts/gen_manuals.py)",
        "function __palhm_task_ids",
        "    set -l tokens (commandline -opc)",
        "    set -l file",
        "    for i in (seq (count $tokens))",
        "        if contains -- $tokens[$i] -f --file; and test $i -lt (count $tokens)",
        "            set file -f $tokens[(math $i + 1)]",
        "        end",
        "    end",
        "    palhm $file config tasks 2>/dev/null",
        "end",
        "complete -c palhm -f",
        *fish_options(parser, "", f"not __fish_seen_subcommand_from {names}"),
    ]
    for name, sub in commands.items():
        lines.append(
            f"complete -c palhm -n 'not __fish_seen_subcommand_from {names}'"
            f" -a {name} -d {fish_quote(texts.get(name, ''))}"
        )
        seen = f"__fish_seen_subcommand_from {name}"
        lines += fish_options(sub, name, seen)
        for action in sub._actions:
            if action.option_strings:
                continue
            if action.dest == TASK_DEST:
                lines.append(f"complete -c palhm -n '{seen}' -a '(__palhm_task_ids)'")
            elif action.choices:
                choices = " ".join(str(c) for c in action.choices)
                lines.append(f"complete -c palhm -n '{seen}' -a '{choices}'")
    return "\n".join(lines) + "\n"


def fish_options(parser: argparse.ArgumentParser, name: str, condition: str) -> list[str]:
    lines = []
    for action in parser._actions:
        if not action.option_strings or action.help == argparse.SUPPRESS:
            continue
        spec = []
        for option in action.option_strings:
            spec.append(f"-l {option[2:]}" if option.startswith("--") else f"-s {option[1:]}")
        if action.nargs != 0:
            spec.append("-r -F" if action.dest == "file" else "-r")
        help_text = fish_quote(action.help or "")
        lines.append(f"complete -c palhm -n '{condition}' {' '.join(spec)} -d {help_text}")
    return lines


def fish_quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


# --------------------------------------------------------------------------- main


def generate(out: Path) -> list[Path]:
    files = {
        "palhm.1": man_palhm(),
        "palhm.conf.5": man_conf(),
        "palhm.bash": shtab_script("bash"),
        "_palhm": shtab_script("zsh"),
        "palhm.fish": fish_script(),
    }
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in files.items():
        path = out / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outdir", type=Path)
    args = parser.parse_args(argv)
    for path in generate(args.outdir):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
