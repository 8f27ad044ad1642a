"""What the console script does around a command: one-line usage errors, aggregated warnings, plain
progress lines when stderr is not a terminal, stopping on a signal, and exiting promptly.

None of this applies to calls of ``influence_stage.cli.main.main`` from Python (tests, notebooks):
they keep their own logging, signal handlers and streams.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import signal
import sys
from typing import Any, NoReturn

SIGNAL_GRACE_S = 2.0
"""Seconds the children (the temporary Prefect server, Dask workers) get after SIGTERM before SIGKILL."""

FIRST_SHOWN = 3
"""How many instances an aggregated warning line shows."""


class OneLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors are one line and a hint to ``--help`` (exit 2)."""

    def error(self, message: str) -> NoReturn:
        """Print ``<prog>: error: <message> (see <prog> --help)`` on stderr and exit 2."""
        text = " ".join(message.split())
        self.exit(2, f"{self.prog}: error: {text} (see {self.prog} --help)\n")


# --------------------------------------------------------------------------------------------------
# warnings: one line per kind
# --------------------------------------------------------------------------------------------------


_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def warning_kind(message: str) -> str:
    """The kind of a warning: its text up to the first ``:`` with numbers replaced by ``#``.

    ``"per-class cap on class 3: 5 rows flagged ..."`` and ``"... class 17: ..."`` are one kind,
    ``"per-class cap on class #"``.
    """
    head = message.split(":", 1)[0] if ":" in message else message
    return _NUMBER.sub("#", head.strip())


def aggregate(messages: list[str], *, first: int = FIRST_SHOWN) -> list[str]:
    """One line per kind of warning (in order of first appearance): the message itself when it is
    the only one of its kind, else ``<kind> (N times): <first>; <second>; <third>; …``."""
    kinds: dict[str, list[str]] = {}
    for m in messages:
        kinds.setdefault(warning_kind(m), []).append(" ".join(m.split()))
    out = []
    for kind, items in kinds.items():
        if len(items) == 1:
            out.append(items[0])
        else:
            shown = "; ".join(items[:first]) + ("; …" if len(items) > first else "")
            out.append(f"{kind} ({len(items)} times): {shown}")
    return out


class WarningCollector(logging.Handler):
    """Collects the package's WARNING records of a run; printed aggregated when the command ends.

    The gate's own "Suite ... failed" record is dropped: the CLI's ``error:`` line says it.
    """

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record must not break the run
            return
        if record.name.startswith("influence_stage.quality") and message.startswith("Suite ") and " failed " in message:
            return
        if record.name == "py.warnings":  # "path:line: Category: text\n  source line": the category and text
            first = message.strip().splitlines()[0] if message.strip() else message
            found = _PY_WARNING.match(first)
            message = f"{found.group(1)}: {found.group(2)}" if found else first
        self.messages.append(message)

    def lines(self, already_shown: list[str] = ()) -> list[str]:  # type: ignore[assignment]
        """The aggregated lines of what was not already shown (the summary's warnings are on stdout)."""
        shown = set(already_shown)
        return aggregate([m for m in self.messages if m not in shown])


_PY_WARNING = re.compile(r".*?:\d+: (\w+): (.*)")


def collect_warnings() -> WarningCollector:
    """Route the package's log warnings and Python's warnings (``warnings.warn`` of any library) to a
    collector instead of printing each one."""
    collector = WarningCollector()
    # off, then on: a library that turned capturing on earlier left warnings.showwarning pointing elsewhere
    # (logging keeps the first original and ignores a second True), and those warnings would be lost
    logging.captureWarnings(False)
    logging.captureWarnings(True)
    for name in ("influence_stage", "py.warnings"):
        logger = logging.getLogger(name)
        logger.addHandler(collector)
        logger.propagate = False
    return collector


# --------------------------------------------------------------------------------------------------
# progress: plain lines when stderr is not a terminal
# --------------------------------------------------------------------------------------------------


_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class PlainLines:
    """A text stream for progress bars written to a file or pipe: no carriage return, no cursor codes.

    A bar redraws itself with ``\\r`` (and moves the cursor with ``ESC[A``); here each bar ends as
    one plain line, its last state, written when the bar closes, another bar starts or a line ends.
    """

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self._state = ""  # the bar's last drawn state, not yet written
        self._line = ""  # text of the line being written

    def _desc(self, text: str) -> str:
        return text.split(":", 1)[0].strip()

    def _flush_state(self) -> None:
        if self._state.strip():
            self._stream.write(self._state.strip() + "\n")
        self._state = ""

    def write(self, text: str) -> int:
        text = _ESCAPE.sub("", text)
        for ch_chunk in re.split(r"([\r\n])", text):
            if ch_chunk == "\r":
                segment, self._line = self._line, ""
                if not segment.strip():
                    if self._state.strip():  # a bar cleared itself: it is done
                        self._flush_state()
                    continue
                if self._state and self._desc(segment) != self._desc(self._state):
                    self._flush_state()
                self._state = segment
            elif ch_chunk == "\n":
                segment, self._line = self._line, ""
                if segment.strip():
                    if self._state and self._desc(segment) != self._desc(self._state):
                        self._flush_state()
                    self._state = ""
                    self._stream.write(segment.rstrip() + "\n")
                else:
                    self._flush_state()
            else:
                self._line += ch_chunk
        return len(text)

    def flush(self) -> None:
        self._stream.flush()

    def close_bars(self) -> None:
        """Write what is pending (at the end of the command)."""
        if self._line.strip():
            self._state = self._line
            self._line = ""
        self._flush_state()
        self._stream.flush()

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self._stream.fileno()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def plain_progress() -> PlainLines | None:
    """When stderr is not a terminal, make it a ``PlainLines`` stream; returns it (None on a TTY)."""
    if sys.stderr.isatty():
        return None
    plain = PlainLines(sys.stderr)
    sys.stderr = plain  # type: ignore[assignment]
    return plain


# --------------------------------------------------------------------------------------------------
# signals and exit
# --------------------------------------------------------------------------------------------------


WATCHDOG: dict[str, int] = {}
"""``{"pid": ...}`` of this process's watchdog (``orphans.start_watchdog``), once started: it is left
running when the children are ended, to end whatever carries the mark but left the tree."""


def end_children(grace: float = SIGNAL_GRACE_S) -> None:
    """SIGTERM every descendant of this process (the watchdog aside), then SIGKILL those alive after
    ``grace`` seconds."""
    if not sys.platform.startswith("linux"):
        return
    from influence_stage.orchestration import orphans

    def tree() -> dict[int, int]:
        return orphans.descendants(os.getpid(), exclude=WATCHDOG.get("pid"))

    orphans.terminate(tree(), grace, poll=0.05, more=tree)  # more: children started meanwhile


def exit_now(code: int) -> NoReturn:
    """Flush the streams, end the children, and leave at once (no interpreter teardown, no waiting on
    Prefect's shutdown): the command's work is done and nothing is left to write."""
    for stream in (sys.stdout, sys.stderr):
        try:
            if isinstance(stream, PlainLines):
                stream.close_bars()
            stream.flush()
        except Exception:  # noqa: S110 - a closed pipe: nothing more can be said
            pass
    end_children()
    os._exit(code)


def _on_signal(signum: int, frame: Any) -> None:
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, signal.SIG_IGN)  # a second Ctrl-C while stopping changes nothing
    name = signal.Signals(signum).name
    try:
        sys.stdout.flush()
    except Exception:  # noqa: S110
        pass
    try:
        os.write(2, f"error: interrupted by {name}; the run stopped, and no unfinished version was published "
                    "(a version is renamed into place only once complete)\n".encode())
    except OSError:
        pass
    if os.environ.get("INFLUENCE_STAGE_DEBUG") == "1":
        import traceback

        traceback.print_stack(frame, file=sys.__stderr__)
    end_children()
    os._exit(128 + signum)


def stop_on_signals(debug: bool = False) -> None:
    """SIGINT, SIGTERM, SIGHUP: one line on stderr, the children ended, exit ``128 + signal`` (130, 143)."""
    if debug:
        os.environ["INFLUENCE_STAGE_DEBUG"] = "1"
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, _on_signal)


def keep_our_sigterm() -> None:
    """Prefect's flow engine swaps SIGTERM for its own handler while a flow runs (to report a crash to
    its API, which on a group signal is gone: minutes of retries). In the console script the CLI's
    handler stays: one line, the children ended, exit 143 within seconds."""
    import contextlib

    try:
        import prefect.flow_engine as engine
    except ImportError:  # pragma: no cover - Prefect is a dependency
        return
    if hasattr(engine, "capture_sigterm"):
        engine.capture_sigterm = contextlib.nullcontext  # type: ignore[assignment]
    detach_server_process()


def detach_server_process() -> None:
    """Start Prefect's temporary API server in a session of its own, in the console script.

    Ctrl-C sends SIGINT to the terminal's whole process group: the server child, still booting or
    serving, would print its own lines ("Aborted!", CPython's fatal-error dump) beside the CLI's one
    line. In its own session only the CLI gets the signal, and the CLI ends the server itself
    (``end_children`` walks the process tree by parent, not by group; the watchdog likewise).
    """
    import subprocess

    try:
        from prefect.server.api import server
    except ImportError:  # pragma: no cover - Prefect is a dependency
        return
    cls = getattr(server, "SubprocessASGIServer", None)
    start = getattr(cls, "_run_uvicorn_command", None)
    if start is None or getattr(start, "detached", False):
        return

    def run_detached(self: Any) -> Any:
        popen = subprocess.Popen

        def detached(*args: Any, **kwargs: Any) -> Any:
            kwargs.setdefault("start_new_session", True)
            return popen(*args, **kwargs)

        subprocess.Popen = detached  # type: ignore[misc]
        try:
            return start(self)
        finally:
            subprocess.Popen = popen  # type: ignore[misc]

    run_detached.detached = True  # type: ignore[attr-defined]
    cls._run_uvicorn_command = run_detached
