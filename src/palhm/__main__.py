"""`python -m palhm` entry point."""

from palhm.cli import main

raise SystemExit(main())
