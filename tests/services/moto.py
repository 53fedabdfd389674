"""Service fixture: moto (see tests/services/README)."""
