"""Run a doc's walk-through as a newcomer would type it: every ```sh block of one section, in order, in one bash
session, in a fresh directory that stands for the checkout.

What the doc promises is checked, not just that it runs:
- any command that exits non-zero ends the session (`set -eo pipefail`; the doc's `get`/`post` helpers use
  `curl --fail-with-body`, so a refusal the doc did not expect fails too), and the test fails with the segment, its
  output and the session's stderr;
- a line `# -> TEXT` right after commands is their documented answer: the lines those commands printed must be
  exactly the `# ->` lines, where `…` stands for any run of characters (an instant, a random code).

The directory gets `.venv/bin/greenrights` and `.venv/bin/python`, two small scripts that run this checkout with
the test's interpreter, so the doc's `.venv/bin/...` commands run as written. Two things are changed for the run
and nothing else: `127.0.0.1:8000` becomes a free port (the machine is shared; `GREENRIGHTS_PORT` is set to the
same port) and the environment carries no `GREENRIGHTS_*` variable of the test process. `curl` on the session's
PATH is the real one behind a recorder that passes its output through unchanged and keeps the answer of every call
that failed (a refused request: `--fail-with-body` exits 22), so a failure report shows the problem the server
answered even where the doc pipes the answer into `jq` or `$(...)`.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.e2e.conftest import REPO, free_port

EXPECT = "# -> "
FAILED_CALLS = "failed-calls.txt"
SESSION_TIMEOUT_S = 150.0


@dataclass
class Segment:
    """Commands and the answer the doc shows for them (empty: the doc shows none, nothing is compared)."""

    block: int
    commands: list[str] = field(default_factory=list)
    expected: list[str] = field(default_factory=list)


def section(doc: Path, heading: str) -> str:
    """The text of the `## heading` section of a doc, up to the next `## ` heading."""
    text = "\n" + doc.read_text(encoding="utf-8")
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def sh_blocks(text: str) -> list[str]:
    return re.findall(r"^```sh\n(.*?)^```", text, re.S | re.M)


def segments(blocks: list[str]) -> list[Segment]:
    out: list[Segment] = []
    for number, block in enumerate(blocks):
        current = Segment(number)
        for line in block.splitlines():
            if line.startswith(EXPECT) or line == EXPECT.rstrip():
                current.expected.append(line[len(EXPECT) :])
                continue
            if current.expected:  # a command after an answer starts the next segment
                out.append(current)
                current = Segment(number)
            current.commands.append(line)
        if current.commands or current.expected:
            out.append(current)
    return out


def matches(expected: list[str], printed: list[str]) -> bool:
    if len(expected) != len(printed):
        return False
    for want, got in zip(expected, printed, strict=True):
        pattern = ".*?".join(re.escape(part) for part in want.split("…"))
        if not re.fullmatch(pattern, got):
            return False
    return True


def newcomer_checkout(tmp: Path) -> Path:
    """`.venv/bin/greenrights` and `.venv/bin/python` in tmp, running this checkout; and the directory of the
    recording `curl` (returned, for the front of PATH)."""
    bin_dir = tmp / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    for name, args in (("greenrights", '-m server.cli "$@"'), ("python", '"$@"')):
        script = bin_dir / name
        script.write_text(f'#!/bin/sh\nPYTHONPATH="{REPO}" exec "{sys.executable}" {args}\n', encoding="utf-8")
        script.chmod(0o755)
    real = shutil.which("curl")
    if real is None:
        raise WalkThroughFailed("the walk-throughs need curl (apt-get install curl)")
    shim_dir = tmp.parent / f"{tmp.name}-shim"
    shim_dir.mkdir()
    shim = shim_dir / "curl"
    shim.write_text(
        "#!/bin/bash\n"
        'out=$(mktemp); "' + real + '" "$@" | tee "$out"; rc=${PIPESTATUS[0]}\n'
        f'if [ "$rc" -ne 0 ]; then {{ echo "curl exit $rc:"; cat "$out"; echo; }} >> "{tmp / FAILED_CALLS}"; fi\n'
        'rm -f "$out"; exit "$rc"\n',
        encoding="utf-8",
    )
    shim.chmod(0o755)
    return shim_dir


class WalkThroughFailed(AssertionError):
    pass


def run_walk_through(
    doc: Path, heading: str, tmp: Path, *more: str | tuple[Path, str]
) -> list[tuple[Segment, list[str]]]:
    """Run the ```sh blocks of the section `heading` of doc, then those of the sections `more` (a heading of the same
    doc, or another doc and its heading) in the same shell, in order; return each segment with what it printed.
    Raises WalkThroughFailed."""
    found: list[Segment] = []
    for part in ((doc, heading), *more):
        path, title = part if isinstance(part, tuple) else (doc, part)
        blocks = sh_blocks(section(path, title))
        if not blocks:
            raise WalkThroughFailed(f"{path.name} § {title}: no ```sh block")
        found += segments(blocks)
    shim_dir = newcomer_checkout(tmp)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GREENRIGHTS_")}
    env["PATH"] = f"{shim_dir}{os.pathsep}{env.get('PATH', '')}"
    env.update({"GREENRIGHTS_PORT": str(port), "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "PYTHONUNBUFFERED": "1"})
    stderr_path = tmp / "session.stderr"
    with stderr_path.open("wb") as err:
        bash = subprocess.Popen(
            ["bash", "--noprofile", "--norc"],
            cwd=tmp,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=err,
            start_new_session=True,  # the session and what it starts in the background (the server) are one group
        )
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert bash.stdout is not None
        for raw in bash.stdout:
            lines.put(raw.decode("utf-8", errors="replace").rstrip("\n"))
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    assert bash.stdin is not None
    bash.stdin.write(b"set -eo pipefail\n")
    results: list[tuple[Segment, list[str]]] = []
    transcript = (tmp / "transcript.txt").open("w", encoding="utf-8")  # every command and what it printed, so far
    deadline = time.monotonic() + SESSION_TIMEOUT_S
    try:
        for i, seg in enumerate(found):
            script = tmp / f"segment-{i:02d}.sh"
            script.write_text("\n".join(seg.commands).replace("127.0.0.1:8000", f"127.0.0.1:{port}") + "\n")
            marker = f"__walk_through_segment_{i}_done__"
            bash.stdin.write(f"source {script.name} < /dev/null\nprintf '\\n{marker}\\n'\n".encode())
            bash.stdin.flush()
            printed: list[str] = []
            while True:
                try:
                    line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
                except queue.Empty:
                    raise WalkThroughFailed(_report(doc, seg, printed, stderr_path, "timed out")) from None
                if line is None:
                    why = f"exited with {bash.wait()}"
                    raise WalkThroughFailed(_report(doc, seg, printed, stderr_path, why))
                if line == marker:
                    break
                printed.append(line)
            while printed and printed[-1] == "":
                printed.pop()
            transcript.write("".join(f"$ {c}\n" for c in seg.commands) + "".join(f"{p}\n" for p in printed))
            transcript.flush()
            if seg.expected and not matches(seg.expected, printed):
                raise WalkThroughFailed(_report(doc, seg, printed, stderr_path, "printed another answer"))
            results.append((seg, printed))
    finally:
        transcript.close()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(bash.pid, signal.SIGTERM)
        try:
            bash.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(bash.pid, signal.SIGKILL)
            bash.wait(timeout=15)
        _wait_group_gone(bash.pid)
    return results


def _wait_group_gone(pgid: int) -> None:
    """The background server may outlive the shell by a moment; it got the same SIGTERM."""
    end = time.monotonic() + 15
    while time.monotonic() < end:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


def _report(doc: Path, seg: Segment, printed: list[str], stderr_path: Path, why: str) -> str:
    err = stderr_path.read_text(encoding="utf-8", errors="replace").splitlines()[-30:]
    calls = stderr_path.with_name(FAILED_CALLS)
    refused = calls.read_text(encoding="utf-8", errors="replace").splitlines()[-12:] if calls.exists() else []
    return "\n".join(
        [
            f"{doc.name}, sh block {seg.block + 1}: {why}",
            f"(what ran before it: {stderr_path.parent}/transcript.txt)",
            "commands:",
            *("    " + c for c in seg.commands),
            "documented answer:",
            *("    " + e for e in seg.expected),
            "printed:",
            *("    " + p for p in printed),
            "stderr (last lines):",
            *("    " + e for e in err),
            "answers of the last refused requests (curl exit 22 is a 4xx/5xx answer):",
            *("    " + r for r in refused),
        ]
    )
