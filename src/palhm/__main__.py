"""`python -m palhm` entry point."""

from palhm.cli.main import entry

entry()
