"""Run the ``caikit-mm`` command line: ``python -m caikit_mm``."""

from .cli import main

raise SystemExit(main())
