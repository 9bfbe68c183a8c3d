"""The report socket: `report`, `snapshot` and hooks handed to a running daemon."""

# The variable naming the socket, for its settings and for every error about it.
SOCKET_VARIABLE = "CODER_TASK_AGENT_SOCKET"
