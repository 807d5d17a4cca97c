"""persrm-gen push against a local stand-in for the Hub (tests/fakehub.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
import yaml
from typer.testing import CliRunner

from fakehub import TOKEN, FakeHub
from persrm_gen.cards.dataset_card import write_dataset_card
from persrm_gen.dataset import config_rows, write_data
from persrm_gen.judge_prompt import judge_messages
from persrm_gen.publish.cli import register
from persrm_gen.publish.plan import PushRefused, plan_push
from persrm_gen.publish.push import push_plan
from persrm_gen.stats import compute_stats
from test_card import make_manifest, make_stats
from trainers_data import pair_rows


# ---------------------------------------------------------------- fixtures

@pytest.fixture
def hub(monkeypatch, tmp_path):
    import huggingface_hub.constants as hf_constants

    from huggingface_hub.utils import disable_progress_bars, enable_progress_bars

    disable_progress_bars()
    with FakeHub() as fake:
        # HfApi takes the endpoint from HF_ENDPOINT at call time (push passes it explicitly);
        # constants.ENDPOINT is what the rest of huggingface_hub reads, fixed at import.
        monkeypatch.setenv("HF_ENDPOINT", fake.url)
        monkeypatch.setattr(hf_constants, "ENDPOINT", fake.url)
        monkeypatch.setenv("HF_TOKEN", TOKEN)
        # No saved login of the developer's may stand in for the test token.
        monkeypatch.setattr(hf_constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
        monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
        monkeypatch.delenv("HF_OIDC_RESOURCE", raising=False)
        yield fake
    enable_progress_bars()


@pytest.fixture
def lfs_only(monkeypatch):
    """Use the legacy LFS protocol (batch, PUT, verify) instead of Xet storage."""
    import huggingface_hub.constants as hf_constants

    monkeypatch.setattr(hf_constants, "HF_HUB_DISABLE_XET", True)


SIZES = {"train": 8, "test_seen_authors": 2, "test_unseen_authors": 2}


def make_dataset(root: Path, manifest: dict | None = None) -> Path:
    """A folder the real validator accepts, written with the build's own data writer."""
    out = root / "out"
    rows = []
    for k, (split, n) in enumerate(SIZES.items()):
        for r in pair_rows(split, n, seed=k):
            r.update(chosen_strategy="author", sample_id=r["id"], rationale_source="evidence",
                     rationale_ok=True, backend="synthetic", model="none")
            rows.append(r)
    by_config = config_rows(
        rows,
        judge_prompt=lambda r: judge_messages(r["context"], r["query"], r["response_a"], r["response_b"]),
        preference_prompt=lambda r: [{"role": "user", "content": r["query"]}],
    )
    counts = write_data(out, by_config)
    manifest = manifest or make_manifest()
    manifest["counts"] = counts
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    write_dataset_card(out, manifest, compute_stats(rows))
    for junk in ("cache.sqlite", "cache.sqlite-wal", "cache.sqlite-shm", "cache.sqlite.lock", ".lock"):
        (out / junk).write_bytes(b"not for the hub")
    return out


def expected_paths(out: Path) -> set[str]:
    return {"README.md", "manifest.json"} | {p.relative_to(out).as_posix() for p in out.rglob("*.parquet")}


def do_push(out: Path, repo_id: str = "tester/pairs", **kw):
    return push_plan(plan_push(out), repo_id, token=TOKEN, wait_max=0, **kw)


# ---------------------------------------------------------------- dataset pushes

def test_dataset_goes_up_as_one_private_commit_with_lfs(tmp_path, hub, lfs_only):
    out = make_dataset(tmp_path)
    result = do_push(out)
    repo = hub.repo("tester/pairs", "dataset")
    assert repo.private is True
    assert len(hub.commits) == 1
    commit = hub.commits[0]
    assert set(commit.files) == expected_paths(out)
    assert not any("sqlite" in p or p.endswith(".lock") for p in repo.branches["main"])
    for path, content in commit.files.items():
        assert content == (out / path).read_bytes(), path
    assert sorted(commit.lfs_paths) == sorted(p for p in commit.files if p.endswith(".parquet"))
    assert hub.count("PUT", r"^/lfs-upload/") == len(commit.lfs_paths)
    card = yaml.safe_load(commit.files["README.md"].decode().split("---\n")[1])
    assert [c["config_name"] for c in card["configs"]] == ["pairs", "sft", "rft", "preference"]
    assert result.n_files == len(commit.files) and result.commit_url.startswith(hub.url)


def test_server_chooses_regular_upload_for_everything(tmp_path, monkeypatch):
    out = make_dataset(tmp_path)
    import huggingface_hub.constants as hf_constants

    with FakeHub(upload_mode="regular") as fake:
        monkeypatch.setattr(hf_constants, "ENDPOINT", fake.url)
        push_plan(plan_push(out), "tester/pairs", token=TOKEN,
                  endpoint=fake.url, wait_max=0)
        assert fake.commits[0].lfs_paths == []
        assert set(fake.commits[0].files) == expected_paths(out)
        assert fake.count("POST", r"lfs/objects/batch") == 0


def test_a_5xx_on_commit_is_retried(tmp_path, hub, lfs_only):
    out = make_dataset(tmp_path)
    hub.fail("POST", r"^/api/datasets/tester/pairs/commit/", times=1, status=502)
    do_push(out)
    assert hub.count("POST", r"/commit/") == 2
    assert len(hub.commits) == 1
    assert set(hub.commits[0].files) == expected_paths(out)


def test_a_5xx_on_create_repo_is_retried(tmp_path, hub, lfs_only):
    hub.fail("POST", r"^/api/repos/create$", times=1, status=503)
    do_push(make_dataset(tmp_path))
    assert hub.count("POST", r"^/api/repos/create$") == 2 and len(hub.commits) == 1


def test_persistent_5xx_gives_up(tmp_path, hub, lfs_only):
    from huggingface_hub.errors import HfHubHTTPError

    hub.fail("POST", r"/commit/", times=10, status=500)
    with pytest.raises(HfHubHTTPError):
        do_push(make_dataset(tmp_path), attempts=3)
    assert hub.count("POST", r"/commit/") == 3 and hub.commits == []


def test_public_flag_and_existing_public_repo(tmp_path, hub, lfs_only):
    out = make_dataset(tmp_path)
    do_push(out, public=True)
    assert hub.repo("tester/pairs").private is False
    with pytest.raises(PushRefused, match="public"):
        do_push(out)  # default private: refuses to add personal data to a public repo
    assert len(hub.commits) == 1


def test_revision_branch_is_created_and_main_untouched(tmp_path, hub, lfs_only):
    out = make_dataset(tmp_path)
    do_push(out, revision="v2")
    repo = hub.repo("tester/pairs")
    assert hub.commits[0].revision == "v2"
    assert "README.md" in repo.branches["v2"] and "README.md" not in repo.branches["main"]


def test_create_pr(tmp_path, hub, lfs_only):
    out = make_dataset(tmp_path)
    result = do_push(out, create_pr=True)
    assert hub.commits[0].pr == 1 and result.pr_url.endswith("/discussions/1")
    assert "README.md" not in hub.repo("tester/pairs").branches["main"]


def test_stale_split_files_are_deleted_in_the_same_commit(tmp_path, hub, lfs_only):
    out = make_dataset(tmp_path)
    do_push(out)
    for cfg in ("pairs", "sft", "rft", "preference"):
        (out / "data" / cfg / "test_seen_authors.parquet").unlink()
    write_dataset_card(out, make_manifest(), make_stats())
    result = do_push(out)
    assert len(hub.commits) == 2
    assert sorted(hub.commits[1].deleted) == sorted(f"data/{c}/test_seen_authors.parquet"
                                                     for c in ("pairs", "sft", "rft", "preference"))
    assert result.deleted == sorted(hub.commits[1].deleted)
    assert not any("test_seen_authors" in p for p in hub.repo("tester/pairs").branches["main"])


# ---------------------------------------------------------------- refusals (no network)

SECRETS = {
    "openai": "sk-proj-" + "a1B2" * 10,
    "anthropic": "sk-ant-api03-" + "x9Y8" * 10,
    "hf": "hf_" + "AbCd" * 9,
    "aws": "AKIA" + "ABCDEFGHIJKLMNOP",
    "bearer": "Authorization: Bearer " + "tok3n" * 6,
    "api_key": "api_key: " + "Zq" * 16,
}


@pytest.mark.parametrize("kind", sorted(SECRETS))
def test_secret_in_manifest_or_card_is_refused(tmp_path, kind):
    out = make_dataset(tmp_path, make_manifest(command="persrm-gen build " + SECRETS[kind]))
    with pytest.raises(PushRefused) as err:
        plan_push(out)
    assert "looks like a secret" in str(err.value)
    assert SECRETS[kind].split()[-1] not in str(err.value)


def test_secret_from_environment_value_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "plainword-but-secret-42")
    out = make_dataset(tmp_path)
    readme = out / "README.md"
    readme.write_text(readme.read_text() + "\nnote: plainword-but-secret-42\n")
    with pytest.raises(PushRefused, match=r"README\.md:\d+: looks like a secret \(value of \$ANTHROPIC_API_KEY\)"):
        plan_push(out)


def test_clean_folder_has_no_false_positives(tmp_path):
    out = make_dataset(tmp_path)  # sha256 hashes, token counts, the citation
    plan = plan_push(out)
    assert {f.path_in_repo for f in plan.files} == expected_paths(out)
    assert set(plan.ignored) >= {"cache.sqlite", "cache.sqlite-wal", "cache.sqlite-shm", "cache.sqlite.lock", ".lock"}


def test_failed_validation_is_refused(tmp_path):
    import pyarrow.parquet as pq

    out = make_dataset(tmp_path)
    path = out / "data" / "pairs" / "train.parquet"
    table = pq.read_table(path)
    labels = table.column("label").to_pylist()
    labels[0] = "B" if labels[0] == "A" else "A"  # label no longer points at the chosen response
    pq.write_table(table.set_column(table.schema.get_field_index("label"), "label", [labels]), path)
    with pytest.raises(PushRefused, match=r"refusing to push .*pair train-0"):
        plan_push(out)


def test_unreadable_data_is_refused(tmp_path):
    out = make_dataset(tmp_path)
    (out / "data" / "pairs" / "train.parquet").write_bytes(b"garbage")
    with pytest.raises(PushRefused, match="validation could not run"):
        plan_push(out)


def test_checkpoint_folder(tmp_path, hub, lfs_only):
    ckpt = tmp_path / "ckpt"
    (ckpt / "checkpoint-10").mkdir(parents=True)
    (ckpt / "config.json").write_text('{"model_type": "qwen2"}')
    (ckpt / "model.safetensors").write_bytes(b"\0" * 2048)
    (ckpt / "checkpoint-10" / "optimizer.pt").write_bytes(b"\0" * 64)
    with pytest.raises(PushRefused, match="model card"):
        plan_push(ckpt)
    (ckpt / "README.md").write_text("---\nlicense: apache-2.0\n---\n# RM\n")
    push_plan(plan_push(ckpt), "tester/persrm-rm", token=TOKEN, wait_max=0)
    repo = hub.repo("tester/persrm-rm", "model")
    assert repo.private is True
    assert set(hub.commits[0].files) == {"config.json", "model.safetensors", "README.md"}


# ---------------------------------------------------------------- CLI

def cli() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """persrm-gen (test harness)."""

    register(app)
    return app


def test_cli_dry_run_lists_files_without_network(tmp_path, monkeypatch):
    out = make_dataset(tmp_path)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens: any request would fail
    monkeypatch.delenv("HF_TOKEN", raising=False)
    res = CliRunner().invoke(cli(), ["push", str(out), "--repo-id", "me/x", "--dry-run"])
    assert res.exit_code == 0, res.output
    listed = {line.split()[-1]: int(line.split()[0]) for line in res.output.splitlines() if line.startswith("  ")}
    assert listed == {p: (out / p).stat().st_size for p in expected_paths(out)}
    assert "private" in res.output and "cache.sqlite" in res.output.splitlines()[-1]


def test_cli_push_and_refusals(tmp_path, hub, lfs_only, monkeypatch):
    out = make_dataset(tmp_path)
    res = CliRunner().invoke(cli(), ["push", str(out), "--repo-id", "tester/pairs", "-m", "first"])
    assert res.exit_code == 0, res.output
    assert hub.commits[0].summary == "first" and hub.repo("tester/pairs").private

    (out / "data" / "sft" / "train.parquet").write_bytes(b"broken")
    res = CliRunner().invoke(cli(), ["push", str(out), "--repo-id", "tester/pairs"])
    assert res.exit_code == 2 and len(res.output.strip().splitlines()) == 1
    assert "refusing to push" in res.output

    monkeypatch.delenv("HF_TOKEN")
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "config.json").write_text("{}")
    (ckpt / "README.md").write_text("# card\n")
    res = CliRunner().invoke(cli(), ["push", str(ckpt), "--repo-id", "tester/rm"])
    assert res.exit_code == 2 and "no Hugging Face token" in res.output
    assert len(hub.commits) == 1
