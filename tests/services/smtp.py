"""Service fixture: smtp (see tests/services/README)."""
