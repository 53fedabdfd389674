"""Telling people: task hooks (mail, HTTP, exec, on-success/on-failure/finally), the
Prometheus textfile (`metrics`), run summaries, and the mail user agents (`mua/`).

Above the engine (hooks run routines and read a backup's result); below ops and cli
(doc/design.md#layers).
"""
