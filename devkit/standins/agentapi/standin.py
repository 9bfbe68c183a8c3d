"""The AgentAPI stand-in as one object: the conversation, the scripted agent and the routes.

Python API for tests and benchmarks: `AgentAPIStandIn` (drive the state with `set_status`,
`append_message`, `rewrite_message`, `add_error`, `preload`, `close_streams`, `wait_for`; read
it through its views) and `run_agentapi_standin`, which serves it inside the caller's task group.
"""

from __future__ import annotations

import ipaddress
import shutil
from collections import deque
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

import anyio
import anyio.abc

from standins.agentapi.agent import ScriptedAgent
from standins.agentapi.clock import Clock, SystemClock
from standins.agentapi.conversation import Conversation
from standins.agentapi.routes import RequestRecord, Routes
from standins.agentapi.scenario import Scenario
from standins.agentapi.wire import AgentError, Level, Message, Role, Status
from standins.http import Request, Response, serve


class AgentAPIStandIn:
    """AgentAPI's state (`conversation`), the scripted agent (`agent`) and the routes (`routes`).

    `scenario` scripts the agent (it may be replaced between turns); `speed` divides every
    scenario duration; `clock` gives timestamps and sleeps; `agent_type` overrides the
    scenario's; uploads go under `upload_dir` (a temporary directory otherwise, removed when
    serving stops); `log` gets one line per request. Serve it with `run_agentapi_standin`.
    """

    def __init__(
        self,
        scenario: Scenario | None = None,
        *,
        speed: float = 1.0,
        clock: Clock | None = None,
        agent_type: str | None = None,
        upload_dir: Path | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        script = scenario if scenario is not None else Scenario()
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.conversation = Conversation(
            self.clock,
            startup_screen=script.startup_screen,
            status="running" if script.startup_seconds > 0 else "stable",
            agent_type=agent_type or script.agent_type,
        )
        self.agent = ScriptedAgent(self.conversation, script, speed=speed, clock=self.clock)
        self.routes = Routes(self.conversation, self.agent, upload_dir=upload_dir, log=log)

    @property
    def scenario(self) -> Scenario:
        return self.agent.scenario

    @scenario.setter
    def scenario(self, scenario: Scenario) -> None:
        self.agent.scenario = scenario

    @property
    def speed(self) -> float:
        return self.agent.speed

    @property
    def agent_type(self) -> str:
        return self.conversation.agent_type

    @property
    def requests(self) -> deque[RequestRecord]:
        return self.routes.requests

    # -- read-only views ----------------------------------------------------------------------

    @property
    def status(self) -> Status:
        return self.conversation.status

    @property
    def messages(self) -> tuple[Message, ...]:
        return self.conversation.messages

    @property
    def errors(self) -> tuple[AgentError, ...]:
        return self.conversation.errors

    @property
    def subscriber_count(self) -> int:
        return self.conversation.subscriber_count

    @property
    def open_streams(self) -> int:
        """`/events` answers still streaming (a dropped subscriber's until its queue is sent)."""
        return self.conversation.open_streams

    @property
    def subscriber_backlogs(self) -> list[int]:
        """How many events each subscriber has queued and not yet been sent."""
        return self.conversation.subscriber_backlogs

    @property
    def lock_waiters(self) -> int:
        """Requests waiting for the send lock (GET /status, GET /messages, POST /message)."""
        return self.routes.lock_waiters

    @property
    def upload_dir(self) -> Path:
        return self.routes.upload_dir

    # -- driving it from Python ---------------------------------------------------------------

    def set_status(self, status: Status) -> None:
        """Set the status; subscribers get a `status_change` when it differs."""
        self.conversation.set_status(status)

    def append_message(self, role: Role, content: str) -> int:
        """Append a message (time: now) and return its id."""
        return self.conversation.append_message(role, content)

    def rewrite_message(self, id_: int, content: str) -> None:
        """Rewrite message `id_` in place, as the agent does: same id and role, time moves."""
        self.conversation.rewrite_message(id_, content)

    def put_message(self, role: Role, content: str, id_: int | None = None) -> int:
        """Append a message (`id_` None or past the end) or rewrite message `id_`; its id."""
        return self.conversation.put_message(role, content, id_)

    def add_error(self, message: str, level: Level = "error") -> None:
        """Store an agent error and send it to subscribers as an `agent_error`."""
        self.conversation.add_error(message, level)

    def preload(self, count: int, size: int) -> None:
        """Append `count` messages of exactly `size` UTF-8 bytes, alternately user and agent."""
        self.conversation.preload(count, size)

    def replace_history(self, contents: Sequence[str]) -> None:
        """Replace the conversation: message i has contents[i], alternately agent and user."""
        self.conversation.replace_history(contents)

    def close_streams(self) -> None:
        """End every open `/events` stream, as when AgentAPI stops; reconnects replay again."""
        self.conversation.close_streams()

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        """Return once `predicate()` holds; it is checked after every change of state."""
        await self.conversation.wait_for(predicate)

    async def handle(self, request: Request) -> Response:
        """Answer one request as AgentAPI would."""
        return await self.routes.handle(request)


def require_loopback(host: str) -> None:
    """Raise ValueError unless `host` is a loopback address (or `localhost`)."""
    if host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(
            f"the AgentAPI stand-in listens on loopback only (127.0.0.1, ::1 or localhost), "
            f"not {host!r}"
        )


async def run_agentapi_standin(
    standin: AgentAPIStandIn,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    reuse_port: bool = False,
    task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve `standin` on host:port until cancelled; reports the bound port through task_status.
    `reuse_port`: as `standins.http.serve`'s.

    Raises ValueError for a non-loopback host, RuntimeError when it is already being served,
    OSError when the port cannot be bound.
    """
    require_loopback(host)
    agent = standin.agent
    if agent.group is not None:
        raise RuntimeError("this AgentAPI stand-in is already being served")
    try:
        async with anyio.create_task_group() as group:
            agent.group = group
            bound: int = await group.start(
                partial(serve, standin.handle, host=host, port=port, reuse_port=reuse_port)
            )
            agent.start_up()
            task_status.started(bound)
    finally:
        agent.group = None
        uploads = standin.routes.created_upload_dir
        if uploads is not None:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(partial(shutil.rmtree, uploads, True))
