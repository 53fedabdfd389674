"""Operations on copies that already exist, and commands built from the engine:
`list`/`verify`/`get` (`operations`), `run --dry-run` (`plan`), `restore` and the
stream checked against the manifest (`feed`), restore drills (`drill`), `palhm init`,
copies from one destination to another (`replicate`).

Above engine and notify; below cli (doc/design.md#layers).
"""
