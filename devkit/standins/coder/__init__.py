"""A Coder server stand-in: `coder-task-agent-dev coder`.

Agent side exactly as coderd (v2.34) answers, a read side showing what a user sees of the task,
a task page, and `/dev/` endpoints to drive and inspect it. One module per concern:

- `gowire`: coderd's answers and Go's decoding of request bodies, times and UUIDs;
- `agent_side`: the two agent endpoints (auth, rate limit, checks, faults, request records);
- `faults`: scripted misbehaviour of those endpoints;
- `read_side`: the task, its logs (live or from the snapshot) and the page (`page.html`);
- `dev`: the `/dev/` endpoints (not Coder's);
- `store`: the state in SQLite;
- `standin`: all of it as one object, and serving it; `cli`: the command.

The expected agent token comes from `--token-file` or `CODER_AGENT_TOKEN`, never from argv. It is
never stored, logged or echoed.
"""

from standins.coder.agent_side import (
    MAX_STATUS_MESSAGE_BYTES,
    RATE_LIMIT,
    RATE_WINDOW,
    TOKEN_HEADER,
    WIRE_STATES,
    RequestRecord,
)
from standins.coder.cli import DEMO_TASK_ID, expected_token, main
from standins.coder.faults import FAULT_ROUTES, Fault
from standins.coder.gowire import (
    DECODE_FAILED,
    LOGS_CONFLICT,
    NOT_FOUND,
    ROUTE_NOT_FOUND,
    SNAPSHOT_BODY_LIMIT,
    WireError,
    coder_error,
    coder_json,
    decode_snapshot,
    go_decode,
    go_struct,
    is_rfc3339,
    parse_go_uuid,
)
from standins.coder.read_side import SNAPSHOT_STATUSES, shown_state
from standins.coder.standin import APP_STATUS_PATH, CoderStandIn, run_coder_standin
from standins.coder.store import TASK_STATUSES, StatusRow, Store, StoredSnapshot, Task

__all__ = [
    "APP_STATUS_PATH",
    "DECODE_FAILED",
    "DEMO_TASK_ID",
    "FAULT_ROUTES",
    "LOGS_CONFLICT",
    "MAX_STATUS_MESSAGE_BYTES",
    "NOT_FOUND",
    "RATE_LIMIT",
    "RATE_WINDOW",
    "ROUTE_NOT_FOUND",
    "SNAPSHOT_BODY_LIMIT",
    "SNAPSHOT_STATUSES",
    "TASK_STATUSES",
    "TOKEN_HEADER",
    "WIRE_STATES",
    "CoderStandIn",
    "Fault",
    "RequestRecord",
    "StatusRow",
    "Store",
    "StoredSnapshot",
    "Task",
    "WireError",
    "coder_error",
    "coder_json",
    "decode_snapshot",
    "expected_token",
    "go_decode",
    "go_struct",
    "is_rfc3339",
    "main",
    "parse_go_uuid",
    "run_coder_standin",
    "shown_state",
]
