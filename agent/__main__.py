"""`python -m agent`: see agent.cli."""

from agent.cli import main

raise SystemExit(main())
