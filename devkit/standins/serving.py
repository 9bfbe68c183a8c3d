"""What every stand-in's command line shares: the port file, and a one-line failure to listen.

A stand-in that cannot bind its port (another one already runs there) says so in one line and
exits 2, rather than printing the task group's traceback.
"""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio

# The exit code of a stand-in that cannot listen: like a usage error, the user must change
# something (stop the other process, or pick another --port).
CANNOT_LISTEN = 2


def write_port_file(path: Path, port: int) -> None:
    """Write the port atomically, so a parent polling the file never reads half a number."""
    partial_path = path.with_name(path.name + ".partial")
    partial_path.write_text(f"{port}\n", encoding="ascii")
    os.replace(partial_path, path)


def listen_error(host: str, port: int, exc: OSError) -> str:
    """One line saying why host:port cannot be served, and what to do about it."""
    shown = f"[{host}]" if ":" in host else host
    reason = exc.strerror or str(exc) or type(exc).__name__
    hint = ""
    if exc.errno == errno.EADDRINUSE:
        hint = " (is another stand-in running there? `--port 0` picks a free port)"
    elif exc.errno == errno.EACCES:
        hint = " (ports below 1024 need privileges)"
    return f"cannot listen on {shown}:{port}: {reason}{hint}"


def run_server(prog: str, host: str, port: int, serve: Callable[[], Awaitable[None]]) -> int:
    """`anyio.run(serve)`; 0 when it returns, CANNOT_LISTEN (one line on stderr) on an OSError.

    The servers bind inside a task group, so the OSError may come wrapped in an exception group;
    anything else is re-raised as is.
    """
    try:
        anyio.run(serve)
    except OSError as exc:
        failure = exc
    except BaseExceptionGroup as group:
        matched, rest = group.split(OSError)
        if matched is None or rest is not None:
            raise
        failure = _first(matched)
    else:
        return 0
    print(f"{prog}: {listen_error(host, port, failure)}", file=sys.stderr, flush=True)
    return CANNOT_LISTEN


def _first(group: BaseExceptionGroup[OSError]) -> OSError:
    first = group.exceptions[0]
    return _first(first) if isinstance(first, BaseExceptionGroup) else first
