"""CLI command ``batches``: the provider batches a ``--batch`` build submitted, and cancelling them.

Listing reads OUT/cache.sqlite read-only (the state each batch had when the build last
looked; a running build may hold the folder meanwhile). ``--cancel`` asks the provider to
cancel every batch not known to have ended: the provider and server come from the cache's
rows, the key from the environment (``OPENAI_API_KEY`` / ``ANTHROPIC_API_KEY``), as for
``build``; nothing is written here, and no key is ever stored. The next ``build`` sees the
new states when it polls; lines a cancelled batch did not run are sent again only by a
new ``build``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer

# States after which cancelling has nothing to stop (OpenAI's, Anthropic's, and ours).
_ENDED = {"completed", "failed", "expired", "cancelled", "cancelling", "ended", "canceling", "canceled", "not submitted"}


def batches(
    out: Path = typer.Argument(..., help="A build folder (its cache.sqlite)."),
    cancel: bool = typer.Option(False, "--cancel", help="Cancel the batches still pending at the provider (needs the API key in the environment)."),
    base_url: Optional[str] = typer.Option(None, help="The server to cancel at, when it is not the one the cache names (e.g. a URL with credentials)."),
) -> None:
    """List a folder's provider batches (--batch builds) with their state; --cancel cancels the pending ones."""
    from persrm_gen.errors import UsageError
    from persrm_gen.llm.batches.store import BatchStore  # noqa: PLC0415 - keeps --help fast
    from persrm_gen.llm.cache import RequestCache

    path = out / "cache.sqlite"
    if not path.is_file():
        raise UsageError(f"{path}: no request cache here (not a build folder, or nothing was built yet)")
    with RequestCache(path, read_only=True) as cache:
        rows = BatchStore(cache).all_batches()
    if not rows:
        print(f"{out}: no batches (built without --batch)")
        return
    for b in rows:
        when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(b.created))
        note = f"  {b.message}" if b.message else ""
        downloaded = "downloaded" if b.done else "pending"
        print(f"{b.batch_id}  {b.provider}  {b.state}  {downloaded}  {b.requests} requests  round {b.round}  {when} UTC{note}")
    if cancel:
        _cancel([b for b in rows if not b.done and b.state not in _ENDED], base_url)


def _cancel(pending: list, base_url: str | None) -> None:
    import asyncio

    from persrm_gen.errors import FatalProviderError
    from persrm_gen.llm.batches import make_batch_api
    from persrm_gen.llm.batches.store import SUBMITTING
    from persrm_gen.llm.faults import TransientError

    async def go() -> list[str]:
        failed = []
        for b in pending:
            if b.state == SUBMITTING:
                print(f"{b.batch_id}: never recorded as created; the next build looks it up")
                continue
            api = make_batch_api(b.provider, base_url or b.endpoint)
            try:
                status = await api.cancel(b.batch_id)
                print(f"{b.batch_id}: cancel requested (now {status.state})")
            except (TransientError, FatalProviderError) as e:
                failed.append(f"{b.batch_id}: {e}")
            finally:
                await api.aclose()
        return failed

    if not pending:
        print("nothing to cancel: every batch has ended")
        return
    failed = asyncio.run(go())
    if failed:
        raise FatalProviderError("could not cancel " + "; ".join(failed))


def register(app: typer.Typer) -> None:
    """Attach ``batches`` to the main app."""
    app.command()(batches)
