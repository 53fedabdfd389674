"""Service fixture: databases (see tests/services/README)."""
