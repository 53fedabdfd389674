"""`python -m palhm` entry point."""

from palhm.cli.main import main

raise SystemExit(main())
