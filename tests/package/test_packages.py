"""The Debian package and the wheel, built and installed as README says, then checked
where they are installed: `palhm --version`, `config check` of every shipped config
in place, the man pages, bash completion, `systemd-analyze verify` of the units; the
.deb is then purged and must leave nothing behind.

Selected with `-m package` (also part of the whole suite). The .deb test needs root,
dpkg-buildpackage and apt (it installs the package on this machine, so run it on a
throwaway one, as CI does); the wheel test needs network access to the package
index for the build requirements and palhm's dependencies.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from tests.helpers import need_program, require_services

pytestmark = pytest.mark.package

REPO = Path(__file__).resolve().parents[2]
SYSTEM_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
UNITS = ("palhm-boot-report.service", "palhm@.service", "palhm@.timer")
EXAMPLES = ("dnssec.jsonc", "mariadb.jsonc", "openldap.jsonc", "postgresql.jsonc")


def run(
    argv: Sequence[str], *, env: dict[str, str] | None = None, cwd: Path | str | None = None,
    timeout: float = 600, input: str | None = None,
) -> subprocess.CompletedProcess[str]:  # fmt: skip
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, check=False,
        env=env, cwd=cwd, input=input,
    )  # fmt: skip


def system_env(**extra: str) -> dict[str, str]:
    """An environment with the Debian system's tools first (no venv, no pyenv)."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    return {**env, "PATH": SYSTEM_PATH, "LC_ALL": "C.UTF-8", **extra}


def need(condition: bool, message: str) -> None:
    if not condition:
        if require_services():
            pytest.fail(message)
        pytest.skip(message)


def installed_packages() -> set[str]:
    done = run(["dpkg-query", "-W", "-f=${db:Status-Status} ${Package}\\n"])
    return {line.split()[1] for line in done.stdout.splitlines() if line.startswith("installed ")}


def check_config(palhm: str, path: Path, env: dict[str, str]) -> None:
    """`config check` of a shipped config where it is installed, from / (systemd's
    working directory): exit 0, and only warnings about this host on stderr."""
    done = run([palhm, "-f", str(path), "config", "check"], env=env, cwd="/")
    assert done.returncode == 0, f"{path}: {done.stderr}"
    assert f"{path}: OK" in done.stdout
    assert all(line.startswith("palhm: warning: ") for line in done.stderr.splitlines())


def verify_units(unit_dir: Path, scratch: Path) -> None:
    """systemd-analyze verify of the installed units (templates through an instance)."""
    need_program("systemd-analyze")
    scratch.mkdir(parents=True, exist_ok=True)
    for unit in UNITS:
        shutil.copy(unit_dir / unit, scratch / unit.replace("@.", "@backup."))
    names = [u.replace("@.", "@backup.") for u in UNITS]
    done = run(["systemd-analyze", "verify", *(str(scratch / n) for n in names)], timeout=120)
    assert (done.returncode, done.stderr.strip()) == (0, "")


def check_bash_completion(script: Path, palhm_dir: str, config: Path) -> None:
    need_program("bash")
    program = f"""
source {script}
export PATH={palhm_dir}:$PATH
COMP_WORDS=(palhm -f {config} list "")
COMP_CWORD=4; COMP_LINE="${{COMP_WORDS[*]}}"; COMP_POINT=${{#COMP_LINE}}
_shtab_palhm
printf '%s\\n' "${{COMPREPLY[@]}}"
"""
    done = run(["bash", "-c", program])
    assert done.returncode == 0, done.stderr
    tasks = run([f"{palhm_dir}/palhm", "-f", str(config), "config", "tasks"]).stdout.split()
    assert "check-dnssec" in tasks
    assert done.stdout.split() == tasks


# --------------------------------------------------------------------------- .deb


@pytest.fixture
def deb(tmp_path: Path) -> Iterator[Path]:
    """The .deb built by `make deb` (a copy of the tree is built in build/deb)."""
    need(os.geteuid() == 0, "the .deb test installs a package: run it as root")
    for program in ("dpkg-buildpackage", "dh", "apt-get"):
        need(shutil.which(program, path=SYSTEM_PATH) is not None, f"{program} is missing")
    need(Path("/usr/share/dh-python").is_dir(), "dh-python is missing")
    dist = tmp_path / "dist"
    done = run(["make", "deb"], env=system_env(), cwd=REPO, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (built,) = (REPO / "dist").glob("palhm_*.deb")
    dist.mkdir()
    yield Path(shutil.move(built, dist / built.name))


def test_deb_installs_works_in_place_and_purges_clean(deb: Path, tmp_path: Path) -> None:
    assert "palhm" not in installed_packages(), "palhm is already installed here"
    before = installed_packages()
    env = system_env(DEBIAN_FRONTEND="noninteractive")
    apt = ["apt-get", "-y", "-q", "-o", "DPkg::Lock::Timeout=600", "--no-install-recommends"]
    try:
        done = run([*apt, "install", "--no-upgrade", str(deb)], env=env, timeout=900)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        files = run(["dpkg", "-L", "palhm"]).stdout.split()
        check_installed_deb(tmp_path)
    finally:
        added = sorted(installed_packages() - before)
        if added:
            done = run([*apt, "purge", *added], env=env, timeout=900)
            assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert installed_packages() == before
    # every file the package installed is gone (directories such as /lib are shared)
    left = [f for f in files if os.path.lexists(f) and not os.path.isdir(f)]
    assert left == []
    for directory in ("/etc/palhm", "/usr/lib/palhm", "/usr/share/doc/palhm"):
        assert not Path(directory).exists(), directory
    assert "palhm" not in run(["dpkg-query", "-W", "palhm"]).stdout


def check_installed_deb(tmp_path: Path) -> None:
    env = system_env()
    version = run(["/usr/bin/palhm", "--version"], env=env)
    assert version.returncode == 0, version.stderr
    assert version.stdout.startswith("palhm ")
    doc = Path("/usr/share/doc/palhm")
    for path in [
        *(doc / "examples" / name for name in EXAMPLES),
        doc / "sample.jsonc",
        Path("/etc/palhm/palhm.conf.sample"),
        Path("/etc/palhm/conf.d/core.json"),
    ]:
        check_config("/usr/bin/palhm", path, env)
    for page in ("palhm", "palhm.conf"):
        where = run(["man", "-w", page], env=env)
        assert where.returncode == 0, f"man {page}: {where.stderr}"
    text = run(["man", "-P", "cat", "palhm"], env={**env, "MANWIDTH": "100"}).stdout
    assert "EXIT STATUS" in text and "config check" in text
    check_bash_completion(
        Path("/usr/share/bash-completion/completions/palhm"),
        "/usr/bin",
        doc / "examples/dnssec.jsonc",
    )
    for completion in ("/usr/share/zsh/vendor-completions/_palhm",
                       "/usr/share/fish/vendor_completions.d/palhm.fish"):  # fmt: skip
        assert Path(completion).is_file()
    verify_units(Path("/lib/systemd/system"), tmp_path / "units")
    for unit in UNITS:  # installed, enabled by nothing
        assert not list(Path("/etc/systemd/system").rglob(unit.replace("@.", "@*.")))


# --------------------------------------------------------------------------- wheel


def test_wheel_and_sdist_install_into_a_fresh_venv(tmp_path: Path) -> None:
    need(shutil.which("make") is not None, "make is missing")
    dist = tmp_path / "dist"
    done = run([sys.executable, "-m", "build", "--outdir", str(dist), str(REPO)], timeout=900)
    need(done.returncode == 0 or "No module named build" not in done.stderr, "python -m build")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (wheel,) = dist.glob("palhm-*.whl")
    (sdist,) = dist.glob("palhm-*.tar.gz")
    assert sdist.stat().st_size > 0
    venv = tmp_path / "venv"
    assert run([sys.executable, "-m", "venv", str(venv)]).returncode == 0
    done = run([str(venv / "bin" / "pip"), "install", "-q", str(wheel)], timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    palhm = str(venv / "bin" / "palhm")
    env = {**os.environ, "PATH": f"{venv / 'bin'}:{SYSTEM_PATH}"}
    env.pop("PYTHONPATH", None)
    version = run([palhm, "--version"], env=env)
    assert version.returncode == 0 and version.stdout.startswith("palhm ")
    share = venv / "share"
    for name in EXAMPLES:
        check_config(palhm, share / "doc" / "palhm" / "examples" / name, env)
    check_config(palhm, share / "doc" / "palhm" / "sample.jsonc", env)
    assert (share / "doc" / "palhm" / "config.md").is_file()  # doc/ is in the wheel
    for page in ("man1/palhm.1", "man5/palhm.conf.5"):
        rendered = run(["man", "-l", "-P", "cat", str(share / "man" / page)], env=env)
        assert rendered.returncode == 0 and "palhm" in rendered.stdout
    check_bash_completion(
        share / "bash-completion" / "completions" / "palhm",
        str(venv / "bin"),
        share / "doc" / "palhm" / "examples" / "dnssec.jsonc",
    )
    # the units for a venv/pipx install: make install-units writes the venv's palhm
    staged = tmp_path / "staged"
    done = run(["make", "-C", str(REPO), "install-units", f"DESTDIR={staged}",
                f"PALHM={palhm}"], env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    unit_dir = staged / "etc" / "systemd" / "system"
    assert f"ExecStart={palhm} -q run %i" in (unit_dir / "palhm@.service").read_text()
    verify_units(unit_dir, tmp_path / "units")
