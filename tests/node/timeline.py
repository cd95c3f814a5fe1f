"""A timeline of what happens to a release's pods and Jobs on the real node, to the sub-second.

`Timeline` watches a namespace's pods and Jobs with `kubectl get --watch` while a test runs, stamps every
version it receives with the local time of its arrival, and turns the versions into transitions (pod
scheduled, container started, Ready, Job complete, ...), each recorded once. The test adds what only it
knows (`add`: "helm install returned") and the hook's own JSON-lines log (`add_log_events`); `markdown`
renders one table, seconds from the start.

Why kubectl and arrival times: the API server's own stamps (`startedAt`, `lastTransitionTime`) have
whole seconds only, and the hook's installs and rolls on the node are questions of tenths of seconds.
The kubectl watch is started on `__enter__`; what happened before it listed the namespace arrives in
its first version of each object, and is marked "(already at first sight)": its time is when it was
seen, not when it happened.
"""

from __future__ import annotations

import codecs
import json
import os
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self

COMPONENT_LABEL = "app.kubernetes.io/component"
KINDS = ("pods", "jobs")
FIRST_SIGHT = " (already at first sight)"
# the pod conditions recorded when they become True, in the order a pod normally reaches them
POD_CONDITIONS = ("PodScheduled", "Initialized", "ContainersReady", "Ready")
JOB_CONDITIONS = ("Complete", "Failed")
# how often a watch that kubectl ended (API server restart, watch timeout) is started again
WATCH_RESTARTS = 3

# One transition seen in a version of an object: a key that identifies it (so that it is recorded
# once, however many versions still show it) and its text.
Transition = tuple[tuple[str, ...], str]


# ------------------------------------------------------------------ the stream
class StreamParser:
    """Splits the output of `kubectl get --watch -o json` (JSON values one after the other, no
    separator but whitespace) into values, fed in chunks cut anywhere."""

    def __init__(self) -> None:
        self._decoder = json.JSONDecoder()
        # a chunk may end inside a UTF-8 sequence: the rest of it comes with the next one
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._text = ""
        self.skipped = 0  # values that could not be parsed and were passed over

    def feed(self, data: bytes | str) -> list[Any]:
        """The values that `data` completes, in order; an unfinished value waits for the next chunk."""
        self._text += data if isinstance(data, str) else self._utf8.decode(data)
        values: list[Any] = []
        pos = 0
        while True:
            pos = _skip_space(self._text, pos)
            if pos == len(self._text):
                break
            try:
                value, pos = self._decoder.raw_decode(self._text, pos)
            except json.JSONDecodeError:
                resync = self._text.find("\n{", pos + 1)
                if resync < 0:
                    break  # unfinished: the rest comes with a later chunk
                # kubectl prints each value from a `{` at the start of a line and indents what is
                # inside, so a later line starting with `{` means this value is broken, not unfinished
                self.skipped += 1
                pos = resync + 1
                continue
            values.append(value)
        self._text = self._text[pos:]
        return values

    @property
    def tail(self) -> str:
        """The text of the value not finished yet (once the stream has ended: a cut value)."""
        return self._text


def _skip_space(text: str, pos: int) -> int:
    """The position of the first character at or after `pos` that is not whitespace."""
    while pos < len(text) and text[pos].isspace():
        pos += 1
    return pos


# --------------------------------------------------------- versions to rows
def subject(kind: str, obj: dict[str, Any]) -> str:
    """How rows name an object: `pod matomo-abc12 (component matomo)`."""
    meta = obj.get("metadata") or {}
    component = (meta.get("labels") or {}).get(COMPONENT_LABEL)
    name = f"{kind.removesuffix('s')} {meta.get('name', '?')}"
    return f"{name} (component {component})" if component else name


def pod_transitions(pod: dict[str, Any]) -> list[Transition]:
    """Every transition one version of a pod shows, in the order a pod goes through them."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    conditions = _true_conditions(status, POD_CONDITIONS)
    out: list[Transition] = [(("seen",), f"seen (created {meta.get('creationTimestamp', '?')})")]
    out += conditions.get("PodScheduled", [])
    out += _containers("init container", spec.get("initContainers"), status.get("initContainerStatuses"))
    out += conditions.get("Initialized", [])
    out += _containers("container", spec.get("containers"), status.get("containerStatuses"))
    out += conditions.get("ContainersReady", []) + conditions.get("Ready", [])
    phase = status.get("phase")
    if phase in ("Succeeded", "Failed"):
        out.append((("phase", phase), f"phase {phase}"))
    out += _terminating(meta)
    return out


def job_transitions(job: dict[str, Any]) -> list[Transition]:
    """Every transition one version of a Job shows: seen, its startTime, Complete or Failed."""
    meta = job.get("metadata") or {}
    status = job.get("status") or {}
    out: list[Transition] = [(("seen",), f"seen (created {meta.get('creationTimestamp', '?')})")]
    if status.get("startTime"):
        out.append((("startTime",), f"started (startTime {status['startTime']})"))
    for rows in _true_conditions(status, JOB_CONDITIONS).values():
        out += rows
    out += _terminating(meta)
    return out


def _true_conditions(status: dict[str, Any], types: tuple[str, ...]) -> dict[str, list[Transition]]:
    """The conditions of `types` that are True, by type. Keyed by their lastTransitionTime, so that a
    condition that went False and True again is recorded again."""
    out: dict[str, list[Transition]] = {}
    for c in status.get("conditions") or []:
        kind = c.get("type")
        if kind in types and c.get("status") == "True":
            reason = f" ({c['reason']})" if kind == "Failed" and c.get("reason") else ""
            out[kind] = [(("condition", kind, str(c.get("lastTransitionTime"))), f"{kind}{reason}")]
    return out


def _containers(kind: str, specs: list[dict[str, Any]] | None,
                statuses: list[dict[str, Any]] | None) -> list[Transition]:
    """The starts, startup probes passed and ends of the containers (or init containers) of a pod."""
    # `started` is true as soon as a container without a startup probe runs: only a probe makes it news
    probed = {c.get("name") for c in specs or [] if c.get("startupProbe")}
    out: list[Transition] = []
    for st in statuses or []:
        name = str(st.get("name"))
        # a restarted container's previous run: its end may never have been in a version we saw
        last = (st.get("lastState") or {}).get("terminated")
        if last:
            out.append(_terminated(kind, name, last))
        state = st.get("state") or {}
        if "running" in state:
            # each run has its own container ID: a restart is a new start, not a repeated one
            run = str(st.get("containerID") or state["running"].get("startedAt"))
            restarts = st.get("restartCount") or 0
            again = f" (restart {restarts})" if restarts else ""
            out.append(((kind, name, "started", run), f"{kind} {name} started{again}"))
            if st.get("started") and name in probed:
                out.append(((kind, name, "startup probe", run), f"{kind} {name} startup probe passed"))
        if "terminated" in state:
            out.append(_terminated(kind, name, state["terminated"]))
    return out


def _terminated(kind: str, name: str, term: dict[str, Any]) -> Transition:
    """A container's end, with its exit code (and its reason when it failed)."""
    run = str(term.get("containerID") or term.get("startedAt") or term.get("finishedAt"))
    code = term.get("exitCode")
    reason = f", {term['reason']}" if code and term.get("reason") else ""
    return (kind, name, "terminated", run), f"{kind} {name} terminated ({code}{reason})"


def _terminating(meta: dict[str, Any]) -> list[Transition]:
    """The deletion request (a pod gets its grace period to stop), once set."""
    if not meta.get("deletionTimestamp"):
        return []
    grace = meta.get("deletionGracePeriodSeconds")
    return [(("terminating",), "deletion requested" + (f" (grace {grace} s)" if grace is not None else ""))]


def log_row(label_prefix: str, line: str) -> tuple[float, str] | None:
    """One line of the hook's JSON-lines log as (its ts, its text); None when it is not an event."""
    start = line.find("{")
    if start < 0:
        return None
    try:
        # from the first `{`: `kubectl logs --prefix` puts `[pod/x/hook] ` before each line
        data = json.loads(line[start:])
    except json.JSONDecodeError:
        return None
    if not isinstance(data, dict) or "event" not in data or not isinstance(data.get("ts"), int | float):
        return None  # e.g. the command's result on stdout: not an event
    details = [f"step {data['step']}"] if data.get("step") else []
    if data.get("duration_s") is not None:
        details.append(f"duration_s {data['duration_s']}")
    more = f" ({', '.join(details)})" if details else ""
    return float(data["ts"]), f"{label_prefix}: {data['event']}{more}"


# ---------------------------------------------------------------- the watch
class _Watcher:
    """One `kubectl get KIND --watch` in a thread, started again if kubectl ends on its own; gives
    every value it prints, with its time of arrival, to `sink`."""

    def __init__(self, argv: list[str], kind: str, sink: Callable[[str, Any, float], None],
                 note: Callable[[str], None]) -> None:
        self.argv = argv
        self.kind = kind
        self.sink = sink
        self.note = note
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._thread = threading.Thread(target=self._run, name=f"timeline-{kind}", daemon=True)

    def start(self) -> None:
        """Starts the thread (which starts kubectl)."""
        self._thread.start()

    def stop(self) -> None:
        """Ends kubectl and waits for the thread; what was received stays recorded."""
        self._stopping.set()
        with self._lock:
            proc = self._proc
        if proc is not None:
            _end(proc)
        self._thread.join(timeout=10)

    def _run(self) -> None:
        """Watches until stopped; notes each time kubectl ended by itself (a gap in the timeline)."""
        for _ in range(WATCH_RESTARTS + 1):
            code, err = self._watch_once()
            if self._stopping.is_set():
                return
            self.note(f"kubectl watch of {self.kind} ended ({code}){': ' + err if err else ''}")
            if self._stopping.wait(1.0):
                return

    def _watch_once(self) -> tuple[int | None, str]:
        """Runs kubectl once until it ends; its exit code and the last line of its stderr."""
        with tempfile.TemporaryFile() as errors:  # a file: a pipe nobody reads could block kubectl
            try:
                proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                        stderr=errors)
            except OSError as e:
                return None, str(e)
            with self._lock:
                self._proc = proc
            if self._stopping.is_set():  # stop() came while kubectl was being started
                _end(proc)
            with proc:  # closes the pipe and waits for kubectl
                self._read(proc)
            code = proc.wait()
            errors.seek(0)
            lines = errors.read().decode(errors="replace").strip().splitlines()
            return code, lines[-1] if lines else ""

    def _read(self, proc: subprocess.Popen[bytes]) -> None:
        """Hands every complete value of kubectl's output to the sink as soon as its last byte arrives."""
        assert proc.stdout is not None
        parser = StreamParser()
        fd = proc.stdout.fileno()
        # os.read returns what is there at once; a buffered read would wait for a full buffer
        while chunk := os.read(fd, 65536):
            at = time.time()
            for value in parser.feed(chunk):
                try:
                    self.sink(self.kind, value, at)
                except Exception as e:  # noqa: BLE001  (one odd version must not end the recording)
                    self.note(f"kubectl watch of {self.kind}: a version not understood ({e!r})")
        if parser.tail.strip():
            self.note(f"kubectl watch of {self.kind}: the last version was cut ({len(parser.tail)} characters)")


def _end(proc: subprocess.Popen[bytes]) -> None:
    """Terminates a process, killing it if it does not end within 5 s."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# ---------------------------------------------------------------- the timeline
class Timeline:
    """Records, while entered, the transitions of a namespace's pods and Jobs with their times of
    arrival; plus the rows a test adds. `kubectl_argv` is the command that runs kubectl against the
    cluster (e.g. `["kubectl", "--kubeconfig", "/x"]`); `t0` is time zero of the rows (default: the
    time of `__enter__`)."""

    def __init__(self, kubectl_argv: list[str], namespace: str, t0: float | None = None) -> None:
        self.kubectl_argv = list(kubectl_argv)
        self.namespace = namespace
        self.t0 = t0
        self._lock = threading.Lock()
        self._rows: list[tuple[float, str]] = []  # (unix time, text)
        self._seen: dict[tuple[str, str], set[tuple[str, ...]]] = {}  # (kind, uid) -> transitions recorded
        self._log_rows: set[tuple[float, str]] = set()
        self._watchers: list[_Watcher] = []

    def __enter__(self) -> Self:
        if self.t0 is None:
            self.t0 = time.time()
        for kind in KINDS:
            argv = [*self.kubectl_argv, "get", kind, "--namespace", self.namespace, "--watch",
                    "--output-watch-events", "-o", "json"]
            watcher = _Watcher(argv, kind, self.observe, self.add)
            watcher.start()
            self._watchers.append(watcher)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        for watcher in self._watchers:
            watcher.stop()
        self._watchers = []

    def observe(self, kind: str, event: Any, at: float) -> None:
        """Records the transitions one watch event (`{"type": ..., "object": ...}`) of `kind` ("pods"
        or "jobs") shows that were not recorded before, at `at` (unix time). What the first version
        of an object shows besides being seen happened earlier: marked "(already at first sight)"."""
        if not isinstance(event, dict) or event.get("type") not in ("ADDED", "MODIFIED", "DELETED"):
            return  # ERROR (e.g. 410 Gone) carries a Status, not an object; BOOKMARK nothing new
        obj = event.get("object")
        if not isinstance(obj, dict):
            return
        transitions = pod_transitions(obj) if kind == "pods" else job_transitions(obj)
        if event["type"] == "DELETED":
            transitions.append((("deleted",), "deleted"))
        meta = obj.get("metadata") or {}
        name = subject(kind, obj)
        with self._lock:
            # by uid: a StatefulSet's pod deleted and created again has the same name, not the same uid
            seen = self._seen.setdefault((kind, str(meta.get("uid") or meta.get("name"))), set())
            first = not seen
            for key, what in transitions:
                if key in seen:
                    continue
                seen.add(key)
                late = FIRST_SIGHT if first and key[0] not in ("seen", "deleted") else ""
                self._rows.append((at, f"{name}: {what}{late}"))

    def add(self, label: str, at: float | None = None) -> None:
        """Adds a row the test knows of, at `at` (unix time; default now)."""
        with self._lock:
            self._rows.append((time.time() if at is None else at, label))

    def add_log_events(self, label_prefix: str, text: str) -> None:
        """Adds a row per event of the hook's JSON-lines log `text` (`event`, `ts`, optionally `step`
        and `duration_s`) at its `ts`; other lines are ignored, and so is an event added before (the
        same log read twice adds nothing)."""
        for line in text.splitlines():
            row = log_row(label_prefix, line)
            if row is None:
                continue
            with self._lock:
                if row not in self._log_rows:
                    self._log_rows.add(row)
                    self._rows.append(row)

    def rows(self) -> list[tuple[float, str]]:
        """Every row as (seconds from t0, text), by time (rows of the same time in the order recorded).
        Without a t0 (never entered, none given) the first row is time zero."""
        with self._lock:
            rows = list(self._rows)
        t0 = self.t0 if self.t0 is not None else min((at for at, _ in rows), default=0.0)
        return sorted(((at - t0, what) for at, what in rows), key=lambda row: row[0])

    def markdown(self, title: str) -> str:
        """The rows as a Markdown table `| s | what |`, seconds with one decimal, under `title`."""
        lines = [f"**{title}**", "", "| s | what |", "|---:|---|"]
        for s, what in self.rows():
            seconds = f"{s:.1f}"
            if seconds == "-0.0":  # a row a hair before t0
                seconds = "0.0"
            cell = what.replace("|", "\\|")  # a `|` in a row would end its cell
            lines.append(f"| {seconds} | {cell} |")
        return "\n".join(lines) + "\n"
