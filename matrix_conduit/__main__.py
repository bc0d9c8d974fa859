"""`python -m matrix_conduit`: the same as the `matrix-conduit` command."""

from .cli import main

raise SystemExit(main())
