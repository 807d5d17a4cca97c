"""CLI command ``push``."""

from __future__ import annotations

from pathlib import Path

import typer

from persrm_gen.errors import InputError, UsageError
from persrm_gen.exitcodes import fail


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def _brief(names: list[str], shown: int = 10) -> str:
    if not names:
        return "nothing"
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def push(
    path: Path = typer.Argument(..., help="Built dataset folder (manifest.json + data/) or a checkpoint folder."),
    repo_id: str = typer.Option(..., "--repo-id", help="Hub repository, e.g. me/persrm-pairs."),
    public: bool = typer.Option(False, "--public/--private", help="Visibility when creating the repo (default private)."),
    revision: str | None = typer.Option(None, "--revision", help="Branch to commit to (created if missing)."),
    create_pr: bool = typer.Option(False, "--create-pr", help="Open a pull request instead of committing directly."),
    dry_run: bool = typer.Option(False, "--dry-run", help="List what would be uploaded; no network."),
    token_env: str = typer.Option("HF_TOKEN", "--token-env", help="Environment variable holding the token."),
    message: str | None = typer.Option(None, "--message", "-m", help="Commit message."),
) -> None:
    """Upload a dataset folder or a trained checkpoint to the Hugging Face Hub as one commit."""
    from persrm_gen.dataset.folder import OutputFolder

    with OutputFolder(path).reading():  # never reads a folder mid-publish
        _push(path, repo_id, public, revision, create_pr, dry_run, token_env, message)


def _push(path: Path, repo_id: str, public: bool, revision: str | None, create_pr: bool, dry_run: bool,
          token_env: str, message: str | None) -> None:
    from persrm_gen.publish.plan import plan_push

    try:
        plan = plan_push(path, token_env=token_env)
    except (UsageError, InputError) as exc:
        fail(str(exc))
    if dry_run:
        typer.echo(f"would push {plan.repo_type} {path} -> {repo_id} "
                   f"({'public' if public else 'private'}{', revision ' + revision if revision else ''}"
                   f"{', as a pull request' if create_pr else ''})")
        for f in plan.files:
            typer.echo(f"  {f.size:>12d}  {f.path_in_repo}")
        typer.echo(f"{len(plan.files)} files, {_human(plan.total_bytes)}")
        allowed = ("README.md, manifest.json and data/**/*.parquet" if plan.repo_type == "dataset"
                   else "weights (safetensors), config, tokenizer and card files")
        typer.echo(f"left out (only {allowed} go up): {_brief(plan.left_out)}")
        return
    from huggingface_hub.errors import HfHubHTTPError

    from persrm_gen.publish.push import push_plan, resolve_token

    try:
        result = push_plan(plan, repo_id, token=resolve_token(token_env), public=public,
                           revision=revision, create_pr=create_pr, message=message)
    except UsageError as exc:
        fail(str(exc))
    except HfHubHTTPError as exc:
        fail(f"the Hub refused the request: {str(exc).splitlines()[0]}", code=3)
    typer.echo(f"pushed {result.n_files} files ({_human(result.n_bytes)}) to {result.repo_url}")
    if result.deleted:
        typer.echo(f"removed stale files: {', '.join(result.deleted)}")
    typer.echo(result.pr_url or result.commit_url)


def register(app: typer.Typer) -> None:
    """Attach the push command to the main app."""
    app.command("push")(push)
