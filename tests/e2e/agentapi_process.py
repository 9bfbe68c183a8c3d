"""A stand-in AgentAPI *process* for the stop hook: `python -m tests.e2e.agentapi_process DIR`.

The stop hook signals AgentAPI by PID, so its tests need a real process, not a server inside the
test's event loop. This one behaves as AgentAPI >= 0.12 does towards a stop script:

- serves `GET /messages` on loopback (the conversation in DIR/messages.json, else a default);
- writes its PID file (`--pid-file`) once listening, and removes it when it exits on a signal;
- on SIGUSR1 saves its state to `AGENTAPI_STATE_FILE` (from its environment, as the agentapi
  module passes it) in AgentAPI's format, by writing a temporary file and renaming it, as
  AgentAPI does;
- on SIGTERM saves its state the same way and exits 0, unless `--ignore-term` (then only
  SIGKILL ends it).

Everything it sees goes to DIR/record, one line each, in order (`GET /messages`, `SIGUSR1`,
`SIGTERM`), and its port to DIR/port once it listens.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType

DEFAULT_MESSAGES = [
    {"id": 0, "role": "agent", "content": "Welcome", "time": "2026-01-01T10:00:00Z"},
    {"id": 1, "role": "user", "content": "Fix the flaky test", "time": "2026-01-01T10:00:01Z"},
    {
        "id": 2,
        "role": "agent",
        "content": "Fixed: it raced a timer",
        "time": "2026-01-01T10:01:00Z",
    },
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("dir", type=Path)
    parser.add_argument("--pid-file", type=Path)
    parser.add_argument("--ignore-term", action="store_true")
    args = parser.parse_args(argv)
    directory: Path = args.dir
    record = (directory / "record").open("a", buffering=1, encoding="utf-8")
    source = directory / "messages.json"
    messages = json.loads(source.read_text()) if source.exists() else DEFAULT_MESSAGES
    body = json.dumps(
        {"$schema": "http://localhost/schemas/MessagesResponseBody.json", "messages": messages}
    ).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            record.write(f"GET {self.path}\n")
            if self.path != "/messages":
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return

    def save_state() -> None:
        state = os.environ.get("AGENTAPI_STATE_FILE")
        if state:
            # AgentAPI's AgentState: the text is `message`, not `content`.
            saved = [
                {"id": m["id"], "message": m["content"], "role": m["role"], "time": m["time"]}
                for m in messages
            ]
            temporary = Path(state + ".tmp")
            temporary.write_text(
                json.dumps(
                    {
                        "version": 1,
                        "messages": saved,
                        "initial_prompt": "",
                        "initial_prompt_sent": False,
                    }
                )
            )
            temporary.rename(state)

    def on_usr1(signum: int, frame: FrameType | None) -> None:
        record.write("SIGUSR1\n")
        save_state()

    def on_term(signum: int, frame: FrameType | None) -> None:
        record.write("SIGTERM\n")
        if args.ignore_term:
            return
        save_state()
        if args.pid_file is not None:
            args.pid_file.unlink(missing_ok=True)
        record.close()
        os._exit(0)

    signal.signal(signal.SIGUSR1, on_usr1)
    signal.signal(signal.SIGTERM, on_term)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if args.pid_file is not None:
        args.pid_file.parent.mkdir(parents=True, exist_ok=True)
        args.pid_file.write_text(f"{os.getpid()}\n")
    (directory / "port.tmp").write_text(str(server.server_address[1]))
    (directory / "port.tmp").rename(directory / "port")
    server.serve_forever(poll_interval=0.05)
    return 0


if __name__ == "__main__":
    sys.exit(main())
