"""The command line: argument parsing, logging set-up, the one exception -> exit status
map (`main`), and the runner that runs a task by id with its hooks.

Top layer: it may import every other package; nothing imports it (doc/design.md#layers).
"""
