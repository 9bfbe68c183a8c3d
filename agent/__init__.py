"""coder-task-agent: reports an AI agent's task status to Coder, saves its conversation."""

__version__ = "0.1.0"
