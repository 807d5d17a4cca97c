"""Upload a checked folder to the Hub as one commit.

Repos are created private unless the user says ``public``; pushing into an existing
public repo also needs ``public=True`` (the data holds personal writing). Every file
goes up in a single ``create_commit``; for datasets, stale remote files under
``data/`` (a split that no longer exists) are deleted in that same commit, so a
rebuild after a removal request leaves nothing of the removed author behind.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from persrm_gen.errors import UsageError
from persrm_gen.publish.plan import PushPlan, PushRefused

log = logging.getLogger(__name__)


@dataclass
class PushResult:
    repo_url: str
    commit_url: str
    pr_url: str | None
    n_files: int
    n_bytes: int
    deleted: list[str]


def _is_transient(exc: BaseException) -> bool:
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    if isinstance(exc, OfflineModeIsEnabled):
        return False
    if isinstance(exc, HfHubHTTPError):
        status = getattr(exc.response, "status_code", None)
        return status is not None and (status >= 500 or status in (408, 429))
    return isinstance(exc, (_transport_error(), ConnectionError, TimeoutError))


def _transport_error() -> type[BaseException]:
    """The HTTP client's connection-level error (huggingface_hub 2.x uses httpx2, 1.x httpx)."""
    try:
        import httpx2 as client
    except ImportError:
        try:
            import httpx as client
        except ImportError:
            return OSError
    return client.TransportError


def _log_retry(state: RetryCallState) -> None:
    log.warning("Hub request failed (%s); retry %d", state.outcome.exception(), state.attempt_number)


def _retrying(attempts: int, wait_max: float) -> Retrying:
    return Retrying(
        retry=retry_if_exception(_is_transient),
        stop=stop_after_attempt(attempts),
        wait=wait_exponential(multiplier=min(1.0, wait_max), max=wait_max),
        before_sleep=_log_retry,
        reraise=True,
    )


def resolve_token(token_env: str = "HF_TOKEN") -> str:
    from huggingface_hub import get_token

    token = os.environ.get(token_env) or get_token()
    if not token:
        raise UsageError(f"no Hugging Face token: set ${token_env} or run `hf auth login`")
    return token


def _operations(plan: PushPlan, deletions: list[str]):
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete

    ops = [CommitOperationDelete(path_in_repo=p) for p in deletions]
    ops += [CommitOperationAdd(path_in_repo=f.path_in_repo, path_or_fileobj=str(f.local)) for f in plan.files]
    return ops


def _stale_data_files(api, repo_id: str, plan: PushPlan, revision: str | None) -> list[str]:
    """Remote files under data/ that this push does not replace."""
    if plan.repo_type != "dataset":
        return []
    from huggingface_hub.errors import EntryNotFoundError, RevisionNotFoundError

    try:
        remote = api.list_repo_files(repo_id, repo_type="dataset", revision=revision)
    except (EntryNotFoundError, RevisionNotFoundError):
        return []
    local = {f.path_in_repo for f in plan.files}
    return sorted(p for p in remote if p.startswith("data/") and p not in local)


def push_plan(
    plan: PushPlan,
    repo_id: str,
    *,
    token: str,
    public: bool = False,
    revision: str | None = None,
    create_pr: bool = False,
    message: str | None = None,
    endpoint: str | None = None,
    attempts: int = 4,
    wait_max: float = 8.0,
) -> PushResult:
    from huggingface_hub import HfApi

    api = HfApi(endpoint=endpoint or os.environ.get("HF_ENDPOINT") or None, token=token)
    retry = _retrying(attempts, wait_max)
    kind = plan.repo_type
    repo_url = retry(api.create_repo, repo_id, repo_type=kind, private=not public, exist_ok=True)
    info = retry(api.repo_info, repo_id, repo_type=kind)
    if info.private is False and not public:
        raise PushRefused(f"{repo_id} is a public {kind} repo; pass --public to push to it")
    if revision and revision != "main":
        retry(api.create_branch, repo_id, branch=revision, repo_type=kind, exist_ok=True)
    deletions = retry(_stale_data_files, api, repo_id, plan, revision)
    message = message or f"persrm-gen push: {len(plan.files)} files"

    def commit():
        # Fresh operation objects per attempt: create_commit mutates and consumes them.
        return api.create_commit(
            repo_id, _operations(plan, deletions), commit_message=message, repo_type=kind,
            revision=revision, create_pr=create_pr,
        )

    info = retry(commit)
    return PushResult(str(repo_url), info.commit_url, info.pr_url, len(plan.files), plan.total_bytes, deletions)
