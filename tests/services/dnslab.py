"""Service fixture: dnslab (see tests/services/README)."""
