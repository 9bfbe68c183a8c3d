"""`python -m standins COMMAND`: the same as `coder-task-agent-dev COMMAND`."""

from standins.cli import main

raise SystemExit(main())
