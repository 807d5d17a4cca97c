"""The one exit-code path of every command: one line on stderr and a documented code.

0 done; 1 internal error (one line and the path of a full log, never a traceback on the
terminal); 2 bad input or options, an output folder we may not touch, a full or read-only
disk; 3 the provider refused the request, or most calls of a stage failed; 4 a budget was
reached; 130 interrupted.

Every message passes through :func:`persrm_gen.secrets.redact_secrets` (a provider's
error text may echo the key) and loses terminal control sequences (an author id with an
escape sequence must not repaint the user's terminal).
"""

from __future__ import annotations

import asyncio
import errno
import os
import re
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from persrm_gen.errors import BudgetExceeded, FatalProviderError, InputError, RunInterrupted, StageFailed, UsageError
from persrm_gen.redact import redact_command
from persrm_gen.secrets import redact_secrets

# Optional packages and the extra that installs them (the base install is the offline build).
EXTRAS = {"trl": "train", "peft": "train", "matplotlib": "train",
          "openai": "api", "anthropic": "api", "aiohttp": "api"}

# OS errors that come from the machine, not from a bug: a full disk, a read-only folder.
_ENVIRONMENT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOTDIR,
                       errno.EISDIR, errno.ENAMETOOLONG, errno.EMFILE, errno.ENFILE, errno.EFBIG}

_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def clean_for_terminal(text: str) -> str:
    """No escape sequences or control characters (tabs and newlines stay); no secrets."""
    text = _CONTROL.sub("", _ANSI.sub("", redact_secrets(text)))
    # A lone surrogate cannot be written to a UTF-8 terminal; show it escaped instead.
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def fail(message: str, code: int = 2) -> None:
    """Print ``error: message`` on stderr and exit with ``code``."""
    print(f"error: {clean_for_terminal(message)}", file=sys.stderr, flush=True)
    sys.exit(code)


def run_cli(entry: Callable[[], object]) -> None:
    """Run a command under the contract above. Used by ``persrm-gen`` and by
    ``python -m persrm_gen.trainers.sft|rft`` (and so ``accelerate launch``)."""
    try:
        entry()
    except InputError as exc:
        for issue in exc.issues:
            print(f"error: {clean_for_terminal(str(issue))}", file=sys.stderr)
        sys.exit(2)
    except UsageError as exc:
        fail(str(exc), 2)
    except StageFailed as exc:
        fail(str(exc), 3)
    except FatalProviderError as exc:
        fail(f"the provider refused the request: {exc}", 3)
    except BudgetExceeded as exc:
        fail(f"{exc} The cache keeps what was done; re-run the same command to resume.", 4)
    except RunInterrupted as exc:
        fail(interrupted_line(str(exc)), 130)
    except (KeyboardInterrupt, asyncio.CancelledError):  # a second Ctrl-C/SIGTERM cancels the run's task
        fail(interrupted_line("interrupted."), 130)
    except ModuleNotFoundError as exc:
        extra = EXTRAS.get((exc.name or "").split(".")[0])
        if extra is None:
            _internal_error(exc)
        fail(f"this command needs the {exc.name!r} package: pip install 'persrm-gen[{extra}]'", 2)
    except OSError as exc:
        if exc.errno not in _ENVIRONMENT_ERRNOS:
            _internal_error(exc)
        where = f"{exc.filename}: " if exc.filename else ""
        fail(f"{where}{exc.strerror or exc}", 2)
    except Exception as exc:  # noqa: BLE001 - the contract: one line and a log, never a traceback
        _internal_error(exc)


_RESUME_HINT = "re-run the same command to resume"


def interrupted_line(message: str) -> str:
    """The interruption's one line, with the resume hint once: the client's stop reason
    already carries it (with the cache's path), other interruptions get it added here."""
    if _RESUME_HINT in message.lower():
        return message
    end = "" if message.rstrip().endswith((".", ";", ":")) else "."
    return f"{message.rstrip()}{end} Completed requests are cached; {_RESUME_HINT}."


def _internal_error(exc: BaseException) -> None:
    log = write_log(exc)
    where = f"; full log: {log}" if log else ""
    fail(f"internal error ({type(exc).__name__}: {_first_line(exc)}){where}. Please report it.", 1)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else "no message"


def log_dir() -> Path:
    """``$PERSRM_GEN_CACHE/logs`` or ``~/.cache/persrm-gen/logs``."""
    base = os.environ.get("PERSRM_GEN_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "persrm-gen")
    return Path(base) / "logs"


def write_log(exc: BaseException) -> str | None:
    """The traceback (secrets masked) in a log file; its path, or None if none could be written."""
    text = redact_secrets("".join(traceback.format_exception(exc)))
    header = f"{redact_command(['persrm-gen', *sys.argv[1:]])}\n{time.strftime('%Y-%m-%d %H:%M:%S')}\n\n"
    for folder in (log_dir(), Path(tempfile.gettempdir())):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"persrm-gen-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
            path.write_text(header + text, encoding="utf-8", errors="backslashreplace")
            return str(path)
        except OSError:
            continue
    return None
