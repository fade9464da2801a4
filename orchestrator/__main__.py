"""``python -m orchestrator`` is the same as the ``snapshot-orchestrator`` console script."""

from orchestrator.cli.main import main

raise SystemExit(main())
