"""The containment boundary: whatever escapes a command becomes one log line and an exit code.

Every entry point (`run`, `report`, `snapshot`, `hook`, `stop-hook`) ends with its documented exit
code, never a traceback, and a hook never fails the agent. `agent.errors` covers what we raise on
purpose; this covers the rest (a bug, an OSError nobody expected): `agent.cli` runs each command
in `contained`, the daemon's supervision logs through `describe`. Standard library only, nothing
at import: the hooks' fast path runs it.

A stop signal is Ctrl-C for every command that has no handling of its own: SIGTERM (a stop
script's `timeout`, an agent's hook timeout) and SIGHUP (a closing terminal) end it with one
`command_interrupted` line and the code Ctrl-C gives, where their default actions ended it with
no line at all. `run` handles its signals before it gets here (agent.stop.early), `stop-hook`
takes them as "hurry" (agent.stop.hook).
"""

from __future__ import annotations

import os
import sys

# A plain constant that type checkers treat as true: `typing` is not imported on this path.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import signal as _signal
    from collections.abc import Callable
    from types import FrameType

if not TYPE_CHECKING:
    # `signal`'s functions and numbers without the enums `signal` builds at import: loaded with
    # the interpreter, it costs a hook nothing.
    import _signal

EVENT = "unexpected_error"
# The signals that end a command as Ctrl-C does, by the names its line gives them.
STOPS: dict[int, str] = {
    _signal.SIGINT: "SIGINT",
    _signal.SIGTERM: "SIGTERM",
    _signal.SIGHUP: "SIGHUP",
}
# Set once the first stop signal was raised or the command is ending: a later one changes
# nothing (a second Ctrl-C, or a `timeout` that repeats its signal, landing in the line that
# reports the first, or in the exit, was a traceback).
_ending: list[bool] = []


def contained(command: str, body: Callable[[], int], *, unexpected: Callable[[], int]) -> int:
    """Run `body` and return its exit code; SystemExit (argparse's) passes.

    A ConfigError is printed and exit 2; a stop signal (Ctrl-C, SIGTERM, SIGHUP) is one
    `command_interrupted` line naming it and exit 6; anything else is one `unexpected_error`
    line and `unexpected()`. A command that never fails its caller (`unexpected()` is 0: a hook,
    `stop-hook` without --strict) exits 0 on a signal too; a hook logs its own configuration.
    """
    # Everything inside the `try`, imports too: a signal that lands while they load is one too.
    _ending.clear()  # one command per process; a test runs several
    try:
        safe_standard_streams()
        if sys.unraisablehook is sys.__unraisablehook__:  # not when a test runner holds it
            sys.unraisablehook = lambda unraisable: _unraisable(command, unraisable)
        # Last before `body`: a signal from here on is the command's to take (`stop-hook` takes
        # one as a hurry and still stops AgentAPI, agent.cli), none lands in between.
        take_stop_signals()
        return body()
    except SystemExit:
        _end()
        raise
    except KeyboardInterrupt as exc:  # agent.errors.Interrupted, or Python's own Ctrl-C
        _end()
        from agent.models import ExitCode  # noqa: PLC0415 - stdlib-only, light

        _line("command_interrupted", command=command, signal=getattr(exc, "signal", "SIGINT"))
        code = unexpected()
        return code if code == ExitCode.OK else int(ExitCode.INTERRUPTED)
    except BaseException as exc:  # noqa: BLE001 - the boundary: nothing passes it
        _end()
        from agent.errors import ConfigError  # noqa: PLC0415
        from agent.models import ExitCode  # noqa: PLC0415

        leaf = first_leaf(exc)
        if isinstance(leaf, ConfigError) and command != "hook":
            _print(f"coder-task-agent: configuration error: {leaf}")
            return int(ExitCode.USAGE)
        _line(EVENT, command=command, **describe(leaf))
        return unexpected()
    finally:
        _end()  # the exit code is known: a signal from now on is too late
        settle_standard_streams()


def _end() -> None:
    """The command is ending: a stop signal from now on changes nothing (each way out of
    `contained` calls this first, before anything else: `_raise_at_next_call` knows it by it)."""
    _ending.append(True)


def take_stop_signals() -> None:
    """From now on SIGINT, SIGTERM and SIGHUP raise agent.errors.Interrupted, each where nothing
    else handles it: `run`'s own handlers (installed before this) and a signal the parent
    ignored (`nohup`, a background job's SIGINT) are left as they are."""
    # Imported here, not in the handler: a signal landing while it loads would find no class.
    from agent.errors import Interrupted  # noqa: PLC0415 - every command loads it anyway

    def interrupt(signum: int, frame: FrameType | None) -> None:
        if _ending:
            return  # the command is already ending: it ends with the first signal's line
        _ending.append(True)
        raise Interrupted(STOPS[signum])

    for signum in STOPS:
        if _signal.getsignal(signum) in (_signal.SIG_DFL, _signal.default_int_handler):
            _signal.signal(signum, interrupt)


def _unraisable(command: str, unraisable: sys.UnraisableHookArgs) -> None:
    """What Python cannot raise (an exception in a finaliser, at collection: asyncio's loop that
    failed halfway through its creation with descriptors exhausted) is one line too, not the
    "Exception ignored" traceback that would come after the command's own line. A stop signal
    that landed there is raised again at once, where it can end the command."""
    exc = unraisable.exc_value
    if isinstance(exc, KeyboardInterrupt):
        _raise_at_next_call(exc)
    elif exc is not None:
        _line(EVENT, command=command, unraisable=True, **describe(exc))


def _raise_at_next_call(exc: KeyboardInterrupt) -> None:
    """Raise `exc` at the next call made outside this hook, on this (the main) thread.

    A signal handler runs wherever the main thread is, a finaliser or a weakref callback too
    (importlib's, run as each module lock is freed: many per import), and Python drops what
    these raise. The signal was marked taken: the command went on and ignored any later one
    (`snapshot` waited its whole budget on Coder, SIGTERM after SIGTERM). A profile function
    is the one hook that runs in the interrupted code and whose exception propagates there;
    set last in this hook (which makes no call after it), its first call event is in that
    code, before any blocking call there: it removes itself and raises `exc`, unless that call
    is `contained`'s `_end` (the body has ended: the signal is too late, as any is then).
    """

    def trap(frame: FrameType, event: str, arg: object) -> None:
        if event in ("call", "c_call"):
            sys.setprofile(None)
            if frame.f_code is not _end.__code__:
                raise exc

    sys.setprofile(trap)


def describe(exc: BaseException) -> dict[str, str]:
    """The fields of an `unexpected_error` line (`agent.log.describe`), the token masked."""
    from agent.log import describe as fields_of  # noqa: PLC0415

    try:
        return fields_of(exc, known_secrets())
    except Exception:  # noqa: BLE001 - the token cannot be known: nothing of the message shows
        withheld = "(message withheld: the token could not be read to mask it)"
        return {**fields_of(exc, ()), "error": withheld}


def first_leaf(exc: BaseException) -> BaseException:
    """The first exception inside nested exception groups (a task group wraps what it raises)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def known_secrets() -> tuple[str, ...]:
    """The agent token wherever it is configured, to mask it (agent.config reads it)."""
    from agent import config  # noqa: PLC0415

    return config.read(only=()).masks


def safe_standard_streams() -> None:
    """Put /dev/null on whichever of descriptors 0, 1 and 2 is closed, and give Python a stream.

    Else `sys.stderr` is None (the first line kills a hook) and the next socket takes descriptor 1
    or 2, so a stray write goes down it. In order: each open takes the lowest free descriptor.
    """
    for fd, name in ((0, "stdin"), (1, "stdout"), (2, "stderr")):
        try:
            os.fstat(fd)
        except OSError:
            try:
                opened = os.open(os.devnull, os.O_RDWR)
            except OSError:
                continue
            if opened != fd:
                os.close(opened)
                continue
            os.set_inheritable(fd, True)  # as a standard descriptor is
        if getattr(sys, name) is None and fd != 0:
            # A closed stdin stays None ("no input" is a fact a hook reports); its descriptor
            # is taken all the same.
            stream = open(fd, "w", encoding="utf-8", errors="replace", closefd=False)  # noqa: SIM115
            setattr(sys, name, stream)
    # What the encoding cannot carry (a path in `hook install`'s report on an ASCII stdout,
    # PYTHONIOENCODING=ascii) is written escaped, as stderr does: a UnicodeEncodeError there
    # came after the files were written and said "exit 2", refused.
    try:  # noqa: SIM105 - contextlib is not on the hooks' path
        sys.stdout.reconfigure(errors="backslashreplace")  # type: ignore[union-attr]
    except (AttributeError, ValueError, OSError):
        pass  # not a text file of the standard library's: left as it is


def settle_standard_streams() -> None:
    """Flush stdout and stderr; one that cannot take its bytes (a pipe nobody reads, a full
    disk) gets /dev/null on its descriptor. Else the interpreter's own flush at exit fails
    again: "Exception ignored" on stderr and exit 120 in place of the command's code (a hook's
    0). What was not written is lost either way; the exit code still says what happened.
    """
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):
            try:
                null = os.open(os.devnull, os.O_WRONLY)
                os.dup2(null, stream.fileno())
                os.close(null)
            except (OSError, ValueError, AttributeError):
                continue  # closed or absent: the interpreter does not flush it either


def _line(event: str, **fields: object) -> None:
    try:
        from agent import config  # noqa: PLC0415
        from agent.log import Writer  # noqa: PLC0415

        try:
            fmt = config.read(only=("log_format",)).log_format
        except Exception:  # noqa: BLE001 - a bad format is no reason to lose the line
            fmt = "auto"
        Writer(fmt=fmt, secrets=known_secrets()).error(event, **fields)
    except Exception:  # noqa: BLE001 - the last resort: a line without the formatting
        _print(f"coder-task-agent: {event} {fields.get('error_type', '')}")


def _print(text: str) -> None:
    try:
        from agent.log import mask  # noqa: PLC0415

        text = mask(text, known_secrets())
    except Exception:  # noqa: BLE001 - unmaskable: only the first words, which are ours
        text = ": ".join(text.split(": ")[:3]) + ": (details withheld)"
    try:
        sys.stderr.write(text + "\n")
        sys.stderr.flush()
    except (OSError, ValueError, AttributeError):
        return  # stderr unusable: the exit code says it
