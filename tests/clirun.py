"""The ``kpidash`` command run in process, as a user would run it: its exit code and output.

``invoke(monkeypatch, db, args)`` sets ``KPIDASH_DB``, ``sys.argv`` and stdin for the call
only, captures stdout and stderr, and turns ``SystemExit`` into the exit code.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Sequence
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import pytest

from kpidash.cli import main


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str
    stderr: str


def invoke(monkeypatch: pytest.MonkeyPatch, db: Path, args: Sequence[str], *,
           stdin: str | None = None, cwd: Path | None = None) -> Result:
    """``kpidash *args`` with KPIDASH_DB=db (in ``cwd`` when given)."""
    out, err = io.StringIO(), io.StringIO()
    with monkeypatch.context() as m:
        m.setenv("KPIDASH_DB", str(db))
        m.setattr(sys, "argv", ["kpidash", *args])
        m.setattr(sys, "stdin", io.StringIO(stdin or ""))
        if cwd is not None:
            m.chdir(cwd)
        code = 0
        with redirect_stdout(out), redirect_stderr(err):
            try:
                main()
            except SystemExit as exc:
                code = int(exc.code or 0)
    return Result(code, out.getvalue(), err.getvalue())
