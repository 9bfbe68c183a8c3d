"""`coder-task-agent hook install AGENT` and `hook uninstall AGENT`: our hooks into an agent's
own configuration and out again, the user's bytes kept (docs/hook-install.md).

JSON (and JSONC) is edited at the spans the standard library's decoder finds (`raw_decode`, on
a copy with comments blanked to spaces so offsets stay), never re-dumped: json.dump would
reformat the file and drop comments, and uninstall removes exactly the text install added.
TOML (Codex's `config.toml`) goes through tomlkit, imported only then. A file that is not valid,
or not the shape the agent reads, is refused before anything is written. Exit 0, or 2 with one
line on stderr.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import stat
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from agent.config import FileTooLarge, read_regular
from agent.errors import BadFile, UsageError
from agent.hooks import AGENTS, install_targets
from agent.hooks.targets import EXECUTABLE, ROOT, CodexNotify, JsonHooks, OwnFile, Spec, Target
from agent.models import ExitCode

if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence

    from tomlkit import TOMLDocument

_DECODER = json.JSONDecoder()
# A JSON string (kept), a // or /* */ comment (blanked): strings first, as they may hold `//`.
_STRING_OR_COMMENT = re.compile(r'"(?:[^"\\\n]|\\.)*"|//[^\n]*|/\*.*?\*/', re.DOTALL)
_BOM = "\ufeff"
# Keys that hold a command in the agents' hook entries, and keys that hold nested handlers.
_COMMAND_KEYS = ("command", "bash", "powershell")
_NESTED_KEYS = ("hooks", "action")
_NOTIFY = [EXECUTABLE, "hook", "codex"]
_THEN_RUN = "--then-run"
# An agent's settings are kilobytes; a file larger than this is refused, never cut.
MAX_FILE_BYTES = 16 * 1024 * 1024


# -- JSON: spans found by the standard library's decoder, edits applied to the text ------------


@dataclass(frozen=True)
class _Node:
    """A member of an object (`key` set) or an element of an array, located in the text."""

    key: str | None
    start: int  # the key's quote, or the element's first character
    value_start: int
    end: int  # just past the value
    value: object


def _skip(text: str, at: int) -> int:
    while at < len(text) and text[at] in " \t\r\n":
        at += 1
    return at


def _children(shadow: str, open_at: int) -> tuple[list[_Node], int]:
    """The members or elements of the container opening at `open_at`, and where it closes
    (`shadow` passed `json.loads` already, so every step succeeds)."""
    is_object = shadow[open_at] == "{"
    closing = "}" if is_object else "]"
    nodes: list[_Node] = []
    at = _skip(shadow, open_at + 1)
    if shadow[at] == closing:
        return nodes, at
    while True:
        start = at
        key = None
        if is_object:
            key, at = _DECODER.raw_decode(shadow, at)
            at = _skip(shadow, _skip(shadow, at) + 1)  # past ":"
        value_start = at
        value, at = _DECODER.raw_decode(shadow, at)
        nodes.append(_Node(key, start, value_start, at, value))
        at = _skip(shadow, at)
        if shadow[at] != ",":
            return nodes, at
        at = _skip(shadow, at + 1)


def _last(nodes: list[_Node], key: str) -> _Node | None:
    """The member named `key` (the last one, as json.loads reads duplicates)."""
    return next((node for node in reversed(nodes) if node.key == key), None)


def _line_indent(text: str, at: int) -> str:
    """The whitespace that starts the line holding position `at`."""
    line = text[text.rfind("\n", 0, at) + 1 : at]
    return line[: len(line) - len(line.lstrip(" \t"))]


def _blank_comments(text: str) -> str:
    """`text` with each comment replaced by spaces (line breaks kept): same length, same offsets."""

    def blank(match: re.Match[str]) -> str:
        found = match.group()
        return found if found.startswith('"') else re.sub(r"[^\r\n]", " ", found)

    return _STRING_OR_COMMENT.sub(blank, text)


def _render(
    value: object, indent: str, levels: int, unit: str, newline: str, *, key: str | None = None
) -> str:
    """`value` as JSON (as the member `key` where given), its containers on lines of their own
    down `levels` deep, then on one line: each of our entries ends up on a line of its own."""
    head = "" if key is None else json.dumps(key, ensure_ascii=False) + ": "
    if levels <= 0 or not isinstance(value, dict | list) or not value:
        return head + json.dumps(value, ensure_ascii=False)
    inner = indent + unit
    pairs = value.items() if isinstance(value, dict) else ((None, item) for item in value)
    items = ",".join(
        newline + inner + _render(item, inner, levels - 1, unit, newline, key=name)
        for name, item in pairs
    )
    opening, closing = ("{", "}") if isinstance(value, dict) else ("[", "]")
    return head + opening + items + newline + indent + closing


class _JsonText:
    """A JSON document's text, its comment-blanked twin, and the edits planned on it."""

    def __init__(self, text: str, path: str, *, comments: bool) -> None:
        self.bom = text.startswith(_BOM)
        self.text = text.removeprefix(_BOM)
        self.shadow = _blank_comments(self.text) if comments else self.text
        try:
            value = json.loads(self.shadow)
        except ValueError as exc:
            kind = "JSON (comments allowed)" if comments else "JSON"
            raise BadFile(path, f"not valid {kind}: {exc}") from None
        if not isinstance(value, dict):
            raise BadFile(path, "not a JSON object")
        self.top = _skip(self.shadow, 0)
        self.newline = "\r\n" if "\r\n" in self.text else "\n"
        self.multiline = "\n" in self.shadow[self.top :].rstrip()
        self.unit = self._indent_unit()
        self.edits: list[tuple[int, int, str]] = []

    def _indent_unit(self) -> str:
        nodes, _ = _children(self.shadow, self.top)
        if nodes and "\n" in self.shadow[self.top : nodes[0].start]:
            outer = _line_indent(self.text, self.top)
            inner = _line_indent(self.text, nodes[0].start)
            if inner.startswith(outer) and len(inner) > len(outer):
                return inner[len(outer) :]
        return "  "

    def member(self, key: str | None, value: object, indent: str, levels: int) -> str:
        return _render(value, indent, levels, self.unit, self.newline, key=key)

    def insert(self, open_at: int, items: list[tuple[str | None, object]], levels: int) -> None:
        """Append `items` (members or elements) to the container opening at `open_at`: on lines
        of their own where its items are (`levels` of their containers opened up), else inline."""
        nodes, close_at = _children(self.shadow, open_at)
        if nodes:
            last = nodes[-1]
            gap = self.shadow[nodes[-2].end if len(nodes) > 1 else open_at + 1 : last.start]
            if "\n" in gap:
                indent = _line_indent(self.text, last.start)
                separator = self.newline + indent
            else:
                indent, levels = "", 0
                # After a comma the file's own spacing; after a lone item, JSON's usual one.
                separator = " " if len(nodes) == 1 or gap.replace(",", "") else ""
            text = "".join(
                "," + separator + self.member(key, value, indent, levels) for key, value in items
            )
            # Right after the last value: uninstall removes from there to our value's end.
            self.edits.append((last.end, last.end, text))
            return
        outer = _line_indent(self.text, open_at)
        if self.multiline:
            inner = outer + self.unit
            text = ",".join(
                self.newline + inner + self.member(key, value, inner, levels)
                for key, value in items
            )
            text += self.newline + outer
        else:
            text = ", ".join(self.member(key, value, "", 0) for key, value in items)
        interior = self.shadow[open_at + 1 : close_at]
        # Whitespace inside an empty container gives way; a comment there stays after ours.
        self.edits.append((open_at + 1, close_at if not interior.strip() else open_at + 1, text))

    def remove(self, open_at: int, indices: list[int]) -> None:
        """Remove these members or elements (not all) with their separators: the one after it
        where a kept one follows, else the one before (exactly what `insert` added)."""
        nodes, _ = _children(self.shadow, open_at)
        kept = [i for i in range(len(nodes)) if i not in indices]
        for i in indices:
            if any(k > i for k in kept):
                self.edits.append((nodes[i].start, nodes[i + 1].start, ""))
            else:
                self.edits.append((nodes[i - 1].end, nodes[i].end, ""))

    def result(self) -> str:
        text = self.text
        for start, end, new in sorted(self.edits, reverse=True):
            text = text[:start] + new + text[end:]
        return (_BOM if self.bom else "") + text


def _commands(value: object) -> list[str]:
    """Every command an entry runs (handlers nested in groups and actions included)."""
    found: list[str] = []
    if isinstance(value, list):
        for item in value:
            found += _commands(item)
    elif isinstance(value, dict):
        for key in _COMMAND_KEYS:
            program = value.get(key)
            if isinstance(program, str):
                args = value.get("args")  # Claude Code's exec form: command plus args
                if isinstance(args, list) and all(isinstance(a, str) for a in args):
                    program = shlex.join([program, *args])
                found.append(program)
        for key in _NESTED_KEYS:
            found += _commands(value.get(key))
    return found


def runs_us(program: str, agent: str, wrapper: str | None = None) -> bool:
    """Whether a hook command runs `coder-task-agent hook AGENT` (from any directory)."""
    try:
        words = shlex.split(program)
    except ValueError:
        return False
    for i, word in enumerate(words):
        name = word.rsplit("/", 1)[-1]
        if name == EXECUTABLE and words[i + 1 : i + 3] == ["hook", agent]:
            return True
        if wrapper is not None and name == wrapper:
            return True
    return False


def _is_ours(entry: object, agent: str, wrapper: str | None) -> bool:
    programs = _commands(entry)
    return bool(programs) and all(runs_us(p, agent, wrapper) for p in programs)


def _with_root(value: object, root: str) -> object:
    if isinstance(value, str):
        return value.replace(ROOT, root)
    if isinstance(value, list):
        return [_with_root(item, root) for item in value]
    if isinstance(value, dict):
        return {key: _with_root(item, root) for key, item in value.items()}
    return value


def merge_json(text: str | None, spec: JsonHooks, agent: str, root: str, path: str) -> str:
    """`text` (None or blank: a new file) with our entry appended to each event's list where
    none of ours is yet; BadFile for a file not of the shape the agent reads."""
    events = [(event, _with_root(entry, root)) for event, entry in spec.events]
    if text is None or not text.strip():
        document = {**spec.skeleton, "hooks": {event: [entry] for event, entry in events}}
        return _render(document, "", 3, "  ", "\n") + "\n"
    doc = _JsonText(text, path, comments=spec.comments)
    hooks = _last(_children(doc.shadow, doc.top)[0], "hooks")
    if hooks is None:
        doc.insert(doc.top, [("hooks", {event: [entry] for event, entry in events})], 2)
        return doc.result()
    if not isinstance(hooks.value, dict):
        raise BadFile(path, "`hooks` is not an object")
    present, _ = _children(doc.shadow, hooks.value_start)
    missing: list[tuple[str | None, object]] = []
    for event, entry in events:
        node = _last(present, event)
        if node is None:
            missing.append((event, [entry]))
        elif not isinstance(node.value, list):
            raise BadFile(path, f"`hooks.{event}` is not a list")
        elif not any(_is_ours(item, agent, spec.wrapper) for item in node.value):
            doc.insert(node.value_start, [(None, entry)], 0)
    if missing:
        doc.insert(hooks.value_start, missing, 1)
    return doc.result()


def _remove_entries(
    doc: _JsonText, events: list[_Node], agent: str, wrapper: str | None
) -> list[int]:
    """Plan the removal of our entries from each event list; the lists that held only ours."""
    emptied: list[int] = []
    for index, node in enumerate(events):
        if not isinstance(node.value, list):
            continue
        ours = [i for i, item in enumerate(node.value) if _is_ours(item, agent, wrapper)]
        if ours and len(ours) == len(node.value):
            emptied.append(index)
        elif ours:
            doc.remove(node.value_start, ours)
    return emptied


def unmerge_json(text: str | None, spec: JsonHooks, agent: str, path: str) -> str | None:
    """`text` without our entries (and the event lists or `hooks` they leave empty); None:
    nothing but ours was left, delete the file."""
    if text is None or not text.strip():
        return text
    doc = _JsonText(text, path, comments=spec.comments)
    top, _ = _children(doc.shadow, doc.top)
    hooks = _last(top, "hooks")
    if hooks is None or not isinstance(hooks.value, dict):
        return text
    events, _ = _children(doc.shadow, hooks.value_start)
    emptied = _remove_entries(doc, events, agent, spec.wrapper)
    if not emptied and not doc.edits:
        return text
    if len(emptied) < len(events):
        if emptied:
            doc.remove(hooks.value_start, emptied)
    elif len(top) == 1:
        return None
    else:
        doc.remove(doc.top, [top.index(hooks)])
    result = doc.result()
    if spec.skeleton:
        left = json.loads(_blank_comments(result.removeprefix(_BOM)))
        if left == spec.skeleton:
            return None
    return result


# -- TOML: Codex's `notify`, through tomlkit ---------------------------------------------------


def _notify_argv(value: object, path: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(word, str) for word in value):
        raise BadFile(path, "`notify` is not a list of strings")
    return [str(word) for word in value]


def _is_our_notify(argv: list[str]) -> bool:
    return bool(argv) and argv[0].rsplit("/", 1)[-1] == EXECUTABLE and argv[1:3] == _NOTIFY[1:]


def _parse_toml(text: str, path: str) -> tuple[str, TOMLDocument]:
    import tomlkit  # noqa: PLC0415 - only a Codex install edits TOML
    from tomlkit.exceptions import TOMLKitError  # noqa: PLC0415

    bom = _BOM if text.startswith(_BOM) else ""
    try:
        return bom, tomlkit.parse(text.removeprefix(_BOM))
    except TOMLKitError as exc:
        raise BadFile(path, f"not valid TOML: {exc}") from None


def merge_notify(text: str | None, path: str) -> str:
    """Codex's config with our `notify`: a new one on the first line (before any table), or
    the user's program run after ours (`--then-run` with its argv as JSON)."""
    source = text or ""
    bom, doc = _parse_toml(source, path)
    if "notify" not in doc:
        body = source.removeprefix(_BOM)
        newline = "\r\n" if "\r\n" in body else "\n"
        return f"{bom}notify = {json.dumps(_NOTIFY)}{newline}{body}"
    argv = _notify_argv(doc.unwrap()["notify"], path)
    if _is_our_notify(argv):
        return source
    doc["notify"] = [*_NOTIFY, _THEN_RUN, json.dumps(argv, ensure_ascii=False)]
    return bom + doc.as_string()


def unmerge_notify(text: str | None, path: str) -> str | None:
    """Codex's config with the user's own `notify` back (or none); None: the file was ours."""
    if text is None:
        return None
    bom, doc = _parse_toml(text, path)
    if "notify" not in doc:
        return text
    argv = _notify_argv(doc.unwrap()["notify"], path)
    if not _is_our_notify(argv):
        return text
    if _THEN_RUN in argv[3:-1]:
        previous = argv[argv.index(_THEN_RUN, 3) + 1]
        try:
            doc["notify"] = _notify_argv(json.loads(previous), path)
        except ValueError:
            raise BadFile(path, f"`notify`'s {_THEN_RUN} is not a JSON list") from None
    else:
        del doc["notify"]
    result = bom + doc.as_string()
    return None if result == "" else result


# -- plan, write, report ------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """One file's content before and after (None: absent), and the mode a new file gets."""

    path: Path
    before: str | None
    after: str | None
    mode: int = 0o644


def _read(path: Path) -> str | None:
    """The file's text, None when absent; BadFile for one that is not a regular file of UTF-8
    text within MAX_FILE_BYTES (a FIFO in its place would hang the install)."""
    try:
        data = read_regular(str(path), MAX_FILE_BYTES)
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise BadFile(str(path), "not a regular file") from None
    except FileTooLarge:
        raise BadFile(
            str(path), f"larger than {MAX_FILE_BYTES} bytes: not an agent's settings"
        ) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise BadFile(str(path), "not UTF-8 text") from None


def _own_text(spec: OwnFile) -> str:
    if spec.resource is None:
        return spec.text
    from importlib.resources import files  # noqa: PLC0415

    return files("agent.hooks").joinpath(spec.resource).read_text(encoding="utf-8")


def plan(target: Target, *, install: bool, project: bool, root: Path) -> list[Change]:
    """What install (or uninstall) would do to each of the agent's files; reads, never writes
    (BadFile for a file it must not edit)."""
    changes: list[Change] = []
    for spec in target.files:
        path = root / (spec.project if project else spec.user)
        before = _read(path)
        after = _after(spec, before, target.agent, install=install, root=root, path=str(path))
        mode = spec.mode if isinstance(spec, OwnFile) else 0o644
        changes.append(Change(path, before, after, mode))
    return changes


def _after(
    spec: Spec, before: str | None, agent: str, *, install: bool, root: Path, path: str
) -> str | None:
    if isinstance(spec, JsonHooks):
        if install:
            return merge_json(before, spec, agent, str(root), path)
        return unmerge_json(before, spec, agent, path)
    if isinstance(spec, CodexNotify):
        return merge_notify(before, path) if install else unmerge_notify(before, path)
    return _own_text(spec) if install else None


def write_atomically(path: Path, text: str, mode: int) -> None:
    """Replace `path`'s content at once (a temporary file beside it, then os.replace). An
    existing file keeps its mode (and owner, where allowed), a symlink is written through; a
    new file gets `mode` less the umask."""
    target = Path(os.path.realpath(path))
    target.parent.mkdir(parents=True, exist_ok=True)
    owner: tuple[int, int] | None = None
    try:
        status = target.stat()
        mode, owner = stat.S_IMODE(status.st_mode), (status.st_uid, status.st_gid)
    except FileNotFoundError:
        umask = os.umask(0o022)
        os.umask(umask)
        mode &= ~umask
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(text.encode("utf-8"))
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, mode)
        if owner is not None and owner != (os.geteuid(), os.getegid()):
            # Not ours to give away: then the file stays readable through its mode.
            with contextlib.suppress(PermissionError):
                os.chown(temporary, *owner)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def unified_diff(change: Change) -> str:
    """The change as a unified diff (`--dry-run`)."""
    import difflib  # noqa: PLC0415

    before = (change.before or "").splitlines(keepends=True)
    after = (change.after or "").splitlines(keepends=True)
    old = str(change.path) if change.before is not None else "/dev/null"
    new = str(change.path) if change.after is not None else "/dev/null"
    lines = difflib.unified_diff(before, after, old, new)
    end = "\n\\ No newline at end of file\n"
    return "".join(line if line.endswith("\n") else line + end for line in lines)


def _verb(change: Change) -> str | None:
    if change.before == change.after:
        return None if change.before is None else "unchanged"
    if change.before is None:
        return "created"
    return "removed" if change.after is None else "changed"


def apply(changes: list[Change], out: TextIO) -> None:
    """Write every change, saying what each did as it is done."""
    for change in changes:
        verb = _verb(change)
        if verb is None:
            continue
        if change.after is None and change.before is not None:
            change.path.unlink()
        elif change.after is not None and change.before != change.after:
            write_atomically(change.path, change.after, change.mode)
        print(f"{verb}: {change.path}", file=out)


def _parser() -> argparse.ArgumentParser:
    import argparse  # noqa: PLC0415

    parser = argparse.ArgumentParser(
        prog="coder-task-agent hook",
        description=(
            "Install (or remove) coder-task-agent's status hooks in an agent's own "
            "configuration, merged with what is there: the user's settings and hooks are kept "
            "byte for byte. Exit 0 when done, 2 for a usage error or a file that cannot be "
            "edited (named on stderr, left untouched)."
        ),
    )
    parser.add_argument("action", choices=("install", "uninstall"))
    parser.add_argument("agent", choices=tuple(AGENTS), help="which agent's configuration")
    parser.add_argument(
        "--scope",
        choices=("user", "project"),
        help="user (the default: under $HOME) or project (under --project-dir)",
    )
    parser.add_argument(
        "--project-dir", metavar="DIR", help="the project for --scope project (default: .)"
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="print the change as a diff; write nothing"
    )
    return parser


def main(
    argv: Sequence[str],
    *,
    home: Path | None = None,
    cwd: Path | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """`hook install|uninstall AGENT ...`: the exit code (0, or 2 with one line on stderr)."""
    out = out or sys.stdout
    err = err or sys.stderr
    parser = _parser()
    try:
        args = parser.parse_args(list(argv))
    except SystemExit as exc:  # --help (0) or a usage error (2), already printed
        return exc.code if isinstance(exc.code, int) else ExitCode.USAGE
    action: str = args.action
    try:
        return _run(args, home=home, cwd=cwd, out=out)
    except (BadFile, UsageError) as exc:
        print(f"coder-task-agent: hook {action}: {exc}", file=err)
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"coder-task-agent: hook {action}: {where}{exc.strerror or exc}", file=err)
    except Exception as exc:  # noqa: BLE001 - one line and the exit code, never a traceback
        print(f"coder-task-agent: hook {action}: unexpected error: {exc!r}", file=err)
    return ExitCode.USAGE


def _run(args: argparse.Namespace, *, home: Path | None, cwd: Path | None, out: TextIO) -> int:
    project = args.scope == "project" or (args.scope is None and args.project_dir is not None)
    if args.scope == "user" and args.project_dir is not None:
        raise UsageError("--project-dir", "applies to --scope project only")
    if project:
        root = Path(args.project_dir) if args.project_dir is not None else (cwd or Path.cwd())
        if not root.is_dir():
            raise UsageError("--project-dir", f"no such directory: {root}")
        root = root.resolve()
    else:
        root = home if home is not None else Path.home()
    install = args.action == "install"
    target = install_targets()[args.agent]
    changes = plan(target, install=install, project=project, root=root)
    if args.dry_run:
        for change in changes:
            if change.before != change.after:
                out.write(unified_diff(change))
        print("dry run: nothing written", file=out)
        return ExitCode.OK
    apply(changes, out)
    if not install:
        for relative in target.own_dirs:
            with contextlib.suppress(OSError):  # absent, or holding what is not ours: kept
                (root / relative).rmdir()
        if all(change.before == change.after for change in changes):
            print(f"nothing of coder-task-agent's found for {target.agent}", file=out)
        return ExitCode.OK
    for note in target.notes:
        print(f"note: {note}", file=out)
    import shutil  # noqa: PLC0415

    if shutil.which(EXECUTABLE) is None:
        print(
            f"note: `{EXECUTABLE}` is not on this PATH; the agent's hooks run it by that name, "
            "so put it on the agent's PATH.",
            file=out,
        )
    return ExitCode.OK
