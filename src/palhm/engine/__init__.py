"""The engine: running commands and pipelines (`execute`, built from `spawn`, `relay`,
`group`, `judge`, `pump` and `holders`: doc/design.md#execution), one backup run (`backup`:
the object DAG of `graph`, the copy transaction, commit), rotation (pure planning in
`rotation`), checksums, pins, guards, routine tasks and builtins, signals
(`interrupts`), stray processes, and the progress line.

It uses backends and the core modules (model, manifest, prefix, errors); it never
imports notify, ops, config or cli (doc/design.md#layers).
"""
