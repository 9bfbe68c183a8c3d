"""Local stand-ins for AgentAPI and the Coder server, and the demo: development tools only.

They exist so people can try the daemon on one machine and so the tests and benchmarks have
realistic peers on real loopback sockets. They are a separate distribution
(`coder-task-agent-devkit`, in devkit/ of the repository) that depends on the product; the product
(`agent`) never imports them, and its wheel and container image do not carry them.

Command line: `coder-task-agent-dev COMMAND` or `python -m standins COMMAND` (see `standins.cli`).
"""
