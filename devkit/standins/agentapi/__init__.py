"""A faithful AgentAPI stand-in with a scripted agent: `coder-task-agent-dev agentapi`.

The daemon's hardest peer is AgentAPI (coder/agentapi v0.12.1, terminal mode): this stand-in
answers the way it does, read from its source and its OpenAPI document, so the daemon's timeouts,
retries and parsing meet the real quirks on a real socket, not a toy's. One module per concern:

- `wire`: JSON as Go writes it, SSE frames, huma's answers and problems;
- `bodies`: request bodies as huma reads them (POST /message, the upload form);
- `conversation`: the messages, status, errors and `/events` subscribers;
- `agent` and `scenario`: the scripted agent and the scenario file it plays;
- `routes`: the HTTP routes, the send lock, uploads;
- `clock`: wall-clock timestamps and sleeps (`ManualClock` for tests);
- `standin`: all of it as one object, and serving it; `cli`: the command.
"""

from standins.agentapi.agent import SNAPSHOT_INTERVAL, SPINNER, SPINNER_INTERVAL
from standins.agentapi.bodies import MESSAGE_BODY_LIMIT
from standins.agentapi.cli import main
from standins.agentapi.clock import Clock, ManualClock, SystemClock, go_time
from standins.agentapi.conversation import SUBSCRIBER_BUFFER
from standins.agentapi.routes import (
    ALLOWED_HOSTS,
    BUSY_MESSAGE,
    EMPTY_MESSAGE,
    UPLOAD_LIMIT,
    RequestRecord,
)
from standins.agentapi.standin import AgentAPIStandIn, require_loopback, run_agentapi_standin
from standins.agentapi.wire import AgentError, Message, go_json, schema_url, sse_frame

__all__ = [
    "ALLOWED_HOSTS",
    "BUSY_MESSAGE",
    "EMPTY_MESSAGE",
    "MESSAGE_BODY_LIMIT",
    "SNAPSHOT_INTERVAL",
    "SPINNER",
    "SPINNER_INTERVAL",
    "SUBSCRIBER_BUFFER",
    "UPLOAD_LIMIT",
    "AgentAPIStandIn",
    "AgentError",
    "Clock",
    "ManualClock",
    "Message",
    "RequestRecord",
    "SystemClock",
    "go_json",
    "go_time",
    "main",
    "require_loopback",
    "run_agentapi_standin",
    "schema_url",
    "sse_frame",
]
