"""``python -m orchestrator`` is the same as the ``snapshot-orchestrator`` console script."""

from orchestrator.cli import main

raise SystemExit(main())
