"""``python -m executor``: the same as the ``workflow-executor`` command."""

from executor.cli import main

raise SystemExit(main())
