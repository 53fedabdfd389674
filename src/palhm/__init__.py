"""palhm: Periodic Automatic Live Host Maintenance."""

# The single source of the version (pyproject.toml reads it); a constant, because
# importlib.metadata costs ~60 ms at every start of the CLI.
__version__ = "1.0.0.dev0"
