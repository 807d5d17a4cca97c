"""persrm-gen push against a local stand-in for the Hub (tests/fakehub.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import typer
import yaml
from fakehub import TOKEN, FakeHub
from test_card import make_manifest, make_stats
from trainers_data import pair_rows
from typer.testing import CliRunner

from persrm_gen.cards.dataset_card import write_dataset_card
from persrm_gen.dataset.writer import config_rows, write_data
from persrm_gen.prompts.judge import judge_messages
from persrm_gen.cli.push import register
from persrm_gen.publish.plan import PushRefused, plan_push
from persrm_gen.publish.push import push_plan
from persrm_gen.dataset.stats import compute_stats

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


def make_dataset(root: Path, manifest: dict | None = None, edit_row=None) -> Path:
    """A folder the real validator accepts, written with the build's own data writer.
    ``edit_row(row)`` may change a row before it is written to every config."""
    out = root / "out"
    rows = []
    for k, (split, n) in enumerate(SIZES.items()):
        for r in pair_rows(split, n, seed=k):
            r.update(chosen_strategy="author", sample_id=r["id"], rationale_source="evidence",
                     rationale_ok=True, backend="synthetic", model="none")
            if edit_row is not None:
                edit_row(r)
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
    """What the build wrote: the card, the manifest and data/<config>/<split>.parquet."""
    return {"README.md", "manifest.json"} | {p.relative_to(out).as_posix() for p in out.glob("data/*/*.parquet")}


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
    "api_key": "api_key: " + "Zq9" * 11,
    "github": "ghp_" + "x7Y" * 12,
    "github_pat": "github_pat_11ABCDEFG0" + "a1_" * 20,
    "private_key": "-----BEGIN OPENSSH PRIVATE KEY-----",
    "url": "https://bob:pa55word@example.com/v1",
    "password": "password=hunter22",
    "aws_secret": "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
}


def secret_value(kind: str) -> str:
    """The part of SECRETS[kind] that must never be echoed."""
    text = SECRETS[kind]
    return {"url": "pa55word", "password": "hunter22"}.get(kind, text.split()[-1].split("=")[-1])


@pytest.mark.parametrize("kind", sorted(SECRETS))
def test_secret_in_manifest_or_card_is_refused(tmp_path, kind):
    out = make_dataset(tmp_path, make_manifest(command="persrm-gen build " + SECRETS[kind]))
    with pytest.raises(PushRefused) as err:
        plan_push(out)
    assert "looks like a secret" in str(err.value)
    assert secret_value(kind) not in str(err.value)


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
    assert set(plan.left_out) == {"cache.sqlite", "cache.sqlite-wal", "cache.sqlite-shm", "cache.sqlite.lock", ".lock"}


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
    assert res.output.splitlines()[-1].startswith("left out")


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


# ---------------------------------------------------------------- allowlist and scan

def add_junk(out: Path) -> dict[str, str]:
    """What a careless user keeps beside a dataset (issue 9, item 6); each holds a secret."""
    junk = {
        ".env": "OPENAI_API_KEY=sk-proj-" + "q1W2" * 10,
        ".netrc": "machine huggingface.co login me password hunter22",
        ".git-credentials": "https://me:ghp_" + "Z9y8" * 9 + "@github.com",
        "id_rsa": "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n",
        "credentials": "[default]\naws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n",
        "notes.csv": "id,note\n1,ghp_" + "Ab12" * 9 + "\n",
        "cache.sqlite.bak": "SQLite format 3",
        "big.txt": "x" * 5_000_001 + " ghp_" + "Cd34" * 9,
        "data/raw/precious.csv": "a,b\n",
        "data/pairs/extra.json": "{}",
        "data/.staging/pairs/train.parquet": "stale",
        ".git/config": "[remote]",
    }
    for rel, text in junk.items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_text(text)
    (out / "link.parquet").symlink_to(out / "data" / "pairs" / "train.parquet")
    return junk


def test_only_the_allowlist_goes_up_and_dry_run_says_so(tmp_path, monkeypatch):
    out = make_dataset(tmp_path)
    junk = add_junk(out)
    plan = plan_push(out)  # the junk holds secrets, but none of it is uploaded: no refusal
    assert {f.path_in_repo for f in plan.files} == expected_paths(out)
    assert {"data/raw/precious.csv", "data/pairs/extra.json", "big.txt", "link.parquet",
            ".git/", "data/.staging/"} <= set(plan.left_out)

    monkeypatch.delenv("HF_TOKEN", raising=False)
    res = CliRunner().invoke(cli(), ["push", str(out), "--repo-id", "me/x", "--dry-run"])
    assert res.exit_code == 0, res.output
    listed = [line.split()[-1] for line in res.output.splitlines() if line.startswith("  ")]
    assert sorted(listed) == sorted(expected_paths(out))
    last = res.output.splitlines()[-1]
    assert last.startswith("left out") and ".env" in last and "more" in last  # brief, not every name
    for secret in ("q1W2q1W2", "hunter22", "Z9y8Z9y8", "b3BlbnNzaC1", "wJalrXUtnFEMI", "Ab12Ab12", "Cd34Cd34"):
        assert secret not in res.output and any(secret in text for text in junk.values())


def test_a_secret_anywhere_in_the_data_is_refused_with_file_column_and_row(tmp_path):
    token = "ghp_" + "Zz91" * 9

    def leak(row):
        if row["id"] == "train-5":
            row["context"][1] += f" (my token is {token})"

    out = make_dataset(tmp_path, edit_row=leak)
    import pyarrow.parquet as pq

    ids = pq.read_table(out / "data" / "pairs" / "train.parquet", columns=["id"]).column("id").to_pylist()
    with pytest.raises(PushRefused) as err:
        plan_push(out)
    message = str(err.value)
    assert message.startswith(f"refusing to push: data/pairs/train.parquet: context (row {ids.index('train-5')}): "
                              "looks like a secret (GitHub token) (and ")  # and the sft/rft/preference prompts
    assert token[4:] not in message and token[-8:] not in message


def test_secret_kinds_in_a_data_column_are_each_refused(tmp_path):
    for kind in ("openai", "anthropic", "hf", "github_pat", "private_key", "url", "password", "aws_secret"):
        out = make_dataset(tmp_path / kind, edit_row=lambda r, k=kind: r.update(query=r["query"] + " " + SECRETS[k]))
        with pytest.raises(PushRefused, match=r"data/pairs/test_seen_authors\.parquet: query \(row 0\)") as err:
            plan_push(out)
        assert secret_value(kind) not in str(err.value), kind


def test_prose_and_quoted_code_in_samples_are_not_secrets(tmp_path):
    prose = [
        "She never told anyone her password: it was the name of her first dog.",
        "The secret = a good night's sleep, and a password manager.",
        ("```python\npassword = getpass.getpass()\nconn = connect(user='admin', password=os.environ['DB_PASSWORD'])\n"
         "api_key = \"YOUR_API_KEY\"\nsecret_key = settings.SECRET_KEY\n```"),
        "Connect with postgres://user:password@localhost:5432/app or http://user:<password>@host/.",
        "Bearer bonds were popular; see https://example.com/a?b=c and ssh git@github.com:me/repo.",
        "Token counts: 151643 tokens; the pad_token is <|endoftext|>; task-specific-long-hyphenated-word.",
    ]
    out = make_dataset(tmp_path, edit_row=lambda r: r.update(context=[*r["context"], *prose]))
    assert {f.path_in_repo for f in plan_push(out).files} == expected_paths(out)


def write_nested(path: Path, column: str, secret_row: int, secret: str) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    n = 10
    def text(i):
        return secret if i == secret_row else f"plain text {i}"
    table = pa.table({
        "n": pa.array(range(n)),
        "messages": pa.array([[{"role": "user", "content": text(i) if column == "messages" else "hi"}]
                              for i in range(n)]),
        "meta": pa.array([[("k", text(i) if column == "meta" else "v")] for i in range(n)],
                         type=pa.map_(pa.string(), pa.string())),
        "tags": pa.array([text(i) if column == "tags" else "t" for i in range(n)]).dictionary_encode(),
        "long": pa.array([text(i) if column == "long" else "l" for i in range(n)], type=pa.large_string()),
        "deep": pa.array([{"a": [[text(i) if column == "deep" else "d"]]} for i in range(n)]),
    })
    pq.write_table(table, path, row_group_size=3)  # the secret's row is in the third row group


@pytest.mark.parametrize("column", ["messages", "meta", "tags", "long", "deep"])
def test_nested_string_values_are_scanned_across_row_groups(tmp_path, column):
    from persrm_gen.publish.secret_scan import scan_files

    secret = "sk-ant-api03-" + "Qq7" * 10
    write_nested(tmp_path / "x.parquet", column, 7, secret)
    hits = scan_files(tmp_path, ["x.parquet"])
    assert [str(h) for h in hits] == [f"x.parquet: {column} (row 7): looks like a secret (Anthropic API key)"]
    write_nested(tmp_path / "x.parquet", column, 7, "nothing to see")
    assert scan_files(tmp_path, ["x.parquet"]) == []


def make_tokenizer(folder: Path) -> None:
    """A real tokenizer.json (tokenizers' own writer) whose vocabulary holds words like
    password, secret and token, and a config full of *_token entries."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel()
    words = "password secret token api_key passwd password= secret: bearer access_token github hf_ sk-"
    tok.train_from_iterator([words] * 50, trainers.BpeTrainer(vocab_size=400, special_tokens=["<unk>", "<|endoftext|>"]))
    tok.save(str(folder / "tokenizer.json"), pretty=True)
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "pad_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "model_max_length": 131072,
        "chat_template": "{% for m in messages %}{{ m['content'] }}{% endfor %}"}, indent=2))
    (folder / "special_tokens_map.json").write_text(json.dumps({"pad_token": "<|endoftext|>"}))


def make_checkpoint(root: Path) -> Path:
    import numpy as np
    from safetensors.numpy import save_file

    ckpt = root / "ckpt"
    (ckpt / "checkpoint-10").mkdir(parents=True)
    (ckpt / "config.json").write_text('{"model_type": "qwen2", "pad_token_id": 151643}')
    (ckpt / "generation_config.json").write_text('{"eos_token_id": 151643}')
    save_file({"w": np.zeros((4, 4), dtype=np.float32)}, str(ckpt / "model.safetensors"), metadata={"format": "pt"})
    make_tokenizer(ckpt)
    (ckpt / "README.md").write_text("---\nlicense: other\n---\n# RM\nKeep your password and API key out of prompts.\n")
    (ckpt / "persrm_train.json").write_text(json.dumps({"options": {"judge_base_url": "http://127.0.0.1:9/v1"}}))
    (ckpt / "report.json").write_text("{}")
    for rel in ("training_args.bin", "checkpoint-10/optimizer.pt", "checkpoint-10/rng_state.pth", "predictions.jsonl",
                "accuracy.png", ".env", "notes.txt", "runs/events.out"):
        (ckpt / rel).parent.mkdir(parents=True, exist_ok=True)
        (ckpt / rel).write_text("password=hunter22")
    return ckpt


CHECKPOINT_UPLOADS = {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
                      "tokenizer_config.json", "special_tokens_map.json", "README.md", "persrm_train.json",
                      "report.json"}


def test_checkpoint_uploads_only_model_tokenizer_config_and_card(tmp_path):
    ckpt = make_checkpoint(tmp_path)
    plan = plan_push(ckpt)  # no false positive in the vocabulary, the card or the configs
    assert {f.path_in_repo for f in plan.files} == CHECKPOINT_UPLOADS
    assert set(plan.left_out) == {"training_args.bin", "checkpoint-10/", "predictions.jsonl", "accuracy.png",
                                  ".env", "notes.txt", "runs/"}


@pytest.mark.parametrize("name", ["pytorch_model.bin", "adapter_model.bin", "model.pt", "weights.pkl"])
def test_pickled_weights_are_refused(tmp_path, name):
    ckpt = make_checkpoint(tmp_path)
    (ckpt / name).write_bytes(b"\x80\x04pickle")
    with pytest.raises(PushRefused, match=rf"^{re.escape(name)}: pickled weights .*safetensors"):
        plan_push(ckpt)


def test_a_large_tokenizer_file_is_scanned_whole(tmp_path):
    ckpt = make_checkpoint(tmp_path)
    vocab = json.loads((ckpt / "tokenizer.json").read_text())
    vocab["model"]["vocab"].update({f"w{i}": i + 1000 for i in range(300_000)})  # several MB
    vocab["normalizer"] = {"type": "Replace", "content": "hf_" + "Hh5" * 12}
    (ckpt / "tokenizer.json").write_text(json.dumps(vocab, indent=2))
    assert (ckpt / "tokenizer.json").stat().st_size > 5_000_000
    with pytest.raises(PushRefused, match=r"refusing to push: tokenizer\.json:\d+: looks like a secret \(Hugging Face"):
        plan_push(ckpt)


def test_safetensors_metadata_is_scanned(tmp_path):
    import numpy as np
    from safetensors.numpy import save_file

    ckpt = make_checkpoint(tmp_path)
    save_file({"w": np.zeros(2, dtype=np.float32)}, str(ckpt / "model.safetensors"),
              metadata={"source": "https://u:s3cretpw@internal.example/models"})
    with pytest.raises(PushRefused, match=r"model\.safetensors \(header\): looks like a secret \(URL credentials\)") as err:
        plan_push(ckpt)
    assert "s3cretpw" not in str(err.value)


def test_cli_refusal_is_one_line_without_the_value(tmp_path, monkeypatch):
    out = make_dataset(tmp_path, edit_row=lambda r: r.update(query=r["query"] + " " + SECRETS["github"]))
    res = CliRunner().invoke(cli(), ["push", str(out), "--repo-id", "me/x", "--dry-run"])
    assert res.exit_code == 2 and len(res.output.strip().splitlines()) == 1
    assert "query (row 0): looks like a secret (GitHub token)" in res.output
    assert SECRETS["github"][4:] not in res.output
