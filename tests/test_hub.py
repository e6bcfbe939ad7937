"""Hub and inference: push paths, model cards, the pipeline, the widget export and handler.py, tested against the
local Hub-protocol server of tests/hub_server.py (a real HTTP server on 127.0.0.1; no network, no mocks).

`huggingface_hub` reads `HF_ENDPOINT` at import, so pushing and loading run in subprocesses (tests/hub_jobs.py)
whose environment points at the server: one process runs every push path, one the pushes with no server
listening, and one process without hisr_hf loads every revision the pushes created. The tests then read the
server's commits and compare what the loader got with what the pushed files give when loaded here.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from huggingface_hub import ModelCard
from transformers import AutoModelForSequenceClassification, AutoTokenizer, BertForSequenceClassification

from hisr_hf import BertForHierarchicalClassification, HiSRForHierarchicalClassification, LabelHierarchy
from hisr_hf.decoding import decode_label_paths, decode_pipeline_outputs
from hisr_hf.hub import describe_hub_error, export_to_sequence_classification
from hisr_hf.model_card import (
    TEMPLATE_NAME,
    HiSRModelCardData,
    card_data_for,
    generate_model_card,
    hierarchy_tree,
    template_path,
)

try:
    from . import hub_jobs
    from .hub_server import TEST_TOKEN, HubServer, unused_port, validate_metadata
except ImportError:  # tests/ run as plain modules
    import hub_jobs
    from hub_server import TEST_TOKEN, HubServer, unused_port, validate_metadata

ROOT = Path(__file__).resolve().parents[1]
ORG = hub_jobs.ORG
CODE_FILES = {
    "configuration_hisr.py", "modeling_hisr.py", "hierarchy.py", "loss.py", "decoding.py", "pipeline_hisr.py", "handler.py"
}  # fmt: skip
TOKENIZER_FILES = {"tokenizer.json", "tokenizer_config.json"}
FAILING_REPOS = {f"{ORG}/model-fail-500", f"{ORG}/trainer-fail-500", f"{ORG}/model-auth"}
# What the installed clients call; a new client version that calls something else shows up in unknown_requests.
EXPECTED_ENDPOINTS = {
    ("POST", "/api/repos/create"), ("POST", "/api/validate-yaml"), ("POST", "/api/models/{repo}/preupload/{rev}"),
    ("POST", "/{repo}.git/info/lfs/objects/batch"), ("PUT", "/__lfs_upload/{repo}/{oid}"),
    ("POST", "/__lfs_verify/{repo}"), ("POST", "/api/models/{repo}/commit/{rev}"),
    ("POST", "/api/models/{repo}/branch/{branch}"), ("GET", "/api/models/{repo}"),
    ("GET", "/api/models/{repo}/revision/{rev}"), ("GET", "/api/models/{repo}/tree/{rev}"),
    ("HEAD", "/{repo}/resolve/{rev}/{path}"),
    ("GET", "/{repo}/resolve/{rev}/{path}"),
}  # fmt: skip


# ---------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def hub_server():
    server = HubServer().start()
    # Commits to the *-fail-500 repos fail as when the Hub has an outage mid-push.
    server.state.add_fault("POST", rf"^/api/models/{ORG}/[\w-]*fail-500/commit/", 500, "Internal Error")
    yield server
    server.stop()


def hub_env(endpoint: str, home: Path, with_hisr_hf: bool) -> dict[str, str]:
    """A clean environment for a subprocess that talks to `endpoint` (HF_* settings of the caller dropped)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_", "TRANSFORMERS_"))}
    env.pop("PYTHONPATH", None)
    env.update(
        HF_ENDPOINT=endpoint, HF_TOKEN=TEST_TOKEN, HF_HUB_DISABLE_XET="1", HF_HOME=str(home),
        HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_DISABLE_PROGRESS_BARS="1", TRANSFORMERS_VERBOSITY="error",
        TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1",
    )  # fmt: skip
    if with_hisr_hf:
        env["PYTHONPATH"] = str(ROOT)
    return env


def _start(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen:
    command = [sys.executable, str(Path(hub_jobs.__file__)), *args]
    return subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(process: subprocess.Popen, name: str) -> None:
    output, _ = process.communicate(timeout=600)
    if process.returncode != 0:
        pytest.fail(f"hub job {name!r} failed (exit {process.returncode}):\n{output[-6000:]}")


@pytest.fixture(scope="module")
def pushed(hub_server, tmp_path_factory):
    """Run every push path against the server, and the pushes with no server listening, in parallel."""
    workdir, downdir = tmp_path_factory.mktemp("hub-push"), tmp_path_factory.mktemp("hub-down")
    dead = f"http://127.0.0.1:{unused_port()}"
    push = _start(["push", str(workdir)], hub_env(hub_server.url, workdir / "hf-home", True), workdir)
    down = _start(["down", str(downdir)], hub_env(dead, downdir / "hf-home", True), downdir)
    _finish(push, "push")
    _finish(down, "down")
    return {
        "push": json.loads((workdir / "push.json").read_text(encoding="utf-8")),
        "down": json.loads((downdir / "down.json").read_text(encoding="utf-8")),
        "workdir": workdir,
    }


def _load_items(server) -> list[dict]:
    """Every revision the pushes created (every commit with a config.json, on every branch), plus every checkpoint
    folder a commit wrote to (`last-checkpoint/`, `checkpoint-*/`), as load requests."""
    items: dict[str, dict] = {}
    for repo_id, repo in sorted(server.state.repos.items()):
        if repo_id in FAILING_REPOS:
            continue
        remote_code = repo_id != f"{ORG}/widget-export"
        for branch in repo.branches:
            for commit in repo.history(branch):
                base = {"repo": repo_id, "revision": commit.oid, "remote_code": remote_code, "branch": branch}
                if "config.json" in commit.files:  # a commit of several branches is loaded once, as the first one's
                    items.setdefault(f"{repo_id}@{commit.oid}", dict(base, key=f"{repo_id}@{commit.oid}"))
                touched = {op[1:].rsplit("/", 1)[0] for op in commit.operations if op.startswith("+") and "/" in op}
                for folder in sorted(f for f in touched if f"{f}/config.json" in commit.files):
                    key = f"{repo_id}@{commit.oid}/{folder}"
                    items.setdefault(key, dict(base, key=key, subfolder=folder))
    return list(items.values())


@pytest.fixture(scope="module")
def loaded(pushed, hub_server, tmp_path_factory):
    """Load every revision in a fresh process where hisr_hf cannot be imported (AutoModel + trust_remote_code,
    the stock export without it), run the pipeline on two repos and handler.py on the GCN model."""
    workdir = tmp_path_factory.mktemp("hub-load")
    items = _load_items(hub_server)
    model_push = pushed["push"]["repos"]["model-push"]["commit"]
    widget = pushed["push"]["repos"]["widget-export"]["commit"]
    request = {
        "loads": items,
        "pipelines": [
            {"key": "model-push", "repo": f"{ORG}/model-push", "revision": model_push, "texts": hub_jobs.EXAMPLE_TEXTS},
            {"key": "widget-export", "repo": f"{ORG}/widget-export", "revision": widget, "texts": hub_jobs.EXAMPLE_TEXTS,
             "remote_code": False},
        ],
        "hierarchical": [{"key": key, "repo": f"{ORG}/{key}", "revision": "main"} for key in ("model-push", "save-push")],
        # A branch name, not a commit: snapshot_download then asks /api/models/{repo}/revision/main for the commit.
        "handlers": [{"key": "model-push", "repo": f"{ORG}/model-push", "revision": "main", "payloads": [
            {"inputs": hub_jobs.EXAMPLE_TEXTS[0]},
            {"inputs": hub_jobs.EXAMPLE_TEXTS, "parameters": {"threshold": 0.45, "strategy": "top_down"}},
        ]}],
    }  # fmt: skip
    (workdir / "request.json").write_text(json.dumps(request), encoding="utf-8")
    load = _start(["load", str(workdir / "request.json"), str(workdir / "loaded.json")],
                  hub_env(hub_server.url, workdir / "hf-home", False), workdir)  # fmt: skip
    _finish(load, "load")
    return {"items": items, "result": json.loads((workdir / "loaded.json").read_text(encoding="utf-8"))}


def _materialise(server, repo_id: str, revision: str, folder: Path, subfolder: str | None = None) -> Path:
    """Write the files of one commit (or of one folder of it) to `folder`."""
    commit = server.state.repos[repo_id].resolve(revision)
    prefix = f"{subfolder}/" if subfolder else ""
    for name, stored in commit.files.items():
        if name.startswith(prefix) and "/" not in name[len(prefix) :]:
            (folder / name[len(prefix) :]).write_bytes(stored.content)
    return folder


def _commit_files(server, repo_id: str) -> list[tuple[str, str, set[str]]]:
    """`(oid, title, root files)` of every commit of main after the initial one."""
    history = server.state.repos[repo_id].history()
    return [(c.oid, c.title, {name for name in c.files if "/" not in name}) for c in history[1:]]


# ---------------------------------------------------------------------------------------------- push paths
def test_model_push_to_hub_commit_has_code_card_tokenizer(pushed, hub_server):
    (oid, title, files), = _commit_files(hub_server, f"{ORG}/model-push")  # fmt: skip
    assert oid == pushed["push"]["repos"]["model-push"]["commit"] and title == "Upload HiSR model"
    assert CODE_FILES | TOKENIZER_FILES | {"config.json", "model.safetensors", "README.md"} <= files
    dev = hub_server.state.repos[f"{ORG}/model-push"].resolve("dev")
    assert dev.oid == pushed["push"]["repos"]["model-push"]["dev"]["commit"] and CODE_FILES <= set(dev.files)
    assert hub_server.state.repos[f"{ORG}/model-push"].commits[dev.oid].files["model.safetensors"].lfs


@pytest.mark.parametrize("strategy", hub_jobs.TRAINER_STRATEGIES)
def test_trainer_push_every_revision_has_code_and_card(pushed, hub_server, strategy):
    repo_id = f"{ORG}/trainer-{strategy.replace('_', '-')}"
    commits = _commit_files(hub_server, repo_id)
    titles = [title for _, title, _ in commits]
    assert titles[-1] == "End of training"
    if strategy == "end":
        assert titles == ["End of training"]
    else:  # one push per save (steps 2 and 4), two commits per save when the checkpoint folder goes too
        per_save = 2 if strategy in ("checkpoint", "all_checkpoints") else 1
        assert len(commits) == 2 * per_save + 1 and titles[0] == "Training in progress, step 2"
    for oid, title, files in commits:
        assert CODE_FILES | TOKENIZER_FILES | {"config.json", "model.safetensors", "README.md"} <= files, title
        card = hub_server.state.repos[repo_id].commits[oid].files["README.md"].content.decode()
        assert "hierarchical-text-classification" in card and "This model card has been automatically" not in card
    last = hub_server.state.repos[repo_id].resolve("main")
    folders = {name.split("/")[0] for name in last.files if "/" in name}
    expected = {"checkpoint": {"last-checkpoint"}, "all_checkpoints": {"checkpoint-2", "checkpoint-4"}}.get(strategy, set())
    assert folders == expected
    for folder in folders:
        assert {f"{folder}/{name}" for name in CODE_FILES | {"config.json", "README.md"}} <= set(last.files)
    assert pushed["push"]["repos"][f"trainer-{strategy}"]["failures"] == []


def test_run_htc_push_to_hub(pushed, hub_server):
    commits = _commit_files(hub_server, f"{ORG}/run-htc")
    assert commits[-1][1] == "Model card with the final evaluation results"
    for _, title, files in commits:
        assert CODE_FILES | {"config.json", "model.safetensors", "README.md"} <= files, title
    card = ModelCard(hub_server.state.repos[f"{ORG}/run-htc"].resolve("main").files["README.md"].content.decode())
    splits = {result.dataset_split for result in card.data.eval_results}
    assert splits == {"validation", "test"}
    dev_texts = [json.loads(line)["text"] for line in (pushed["workdir"] / "htc-data" / "dev.jsonl").read_text().splitlines()]
    assert [example["text"] for example in card.data.widget] == dev_texts[:3]
    assert "### Test" in card.text and "htc-data" in card.text  # the data's name, from the folder of train.jsonl


def test_every_revision_loads_with_trust_remote_code(loaded, hub_server, tmp_path):
    result = loaded["result"]
    assert result["errors"] == {}, "\n".join(result["errors"].values())
    assert not result["hisr_hf_imported"]
    repos = {item["repo"] for item in loaded["items"]}
    assert repos == {f"{ORG}/{name}" for name in ("model-push", "save-push", "run-htc", "widget-export")} | {
        f"{ORG}/trainer-{s.replace('_', '-')}" for s in hub_jobs.TRAINER_STRATEGIES
    }
    assert sum("subfolder" in item for item in loaded["items"]) == 4  # last-checkpoint twice, checkpoint-2, -4
    expected: dict[tuple, list] = {}  # many revisions share their weights: load each distinct pair once here
    for i, item in enumerate(loaded["items"]):
        got = result["loads"][item["key"]]
        if item["remote_code"]:
            assert got["class"].startswith("transformers_modules.") and got["class"].endswith("ForHierarchicalClassification")
        else:
            assert got["class"] == "transformers.models.bert.modeling_bert.BertForSequenceClassification"
        commit = hub_server.state.repos[item["repo"]].commits[item["revision"]]
        prefix = f"{item['subfolder']}/" if item.get("subfolder") else ""
        weights = (commit.files[f"{prefix}config.json"].content, commit.files[f"{prefix}model.safetensors"].sha256)
        if weights not in expected:
            folder = tmp_path / str(i)
            folder.mkdir()
            _materialise(hub_server, item["repo"], item["revision"], folder, item.get("subfolder"))
            cls = HiSRForHierarchicalClassification if item["remote_code"] else BertForSequenceClassification
            expected[weights] = hub_jobs.fixed_logits(cls.from_pretrained(folder).eval())
        torch.testing.assert_close(torch.tensor(got["logits"]), torch.tensor(expected[weights]), atol=1e-5, rtol=1e-5)


def test_latest_revisions_give_the_trained_models_logits(pushed, loaded):
    loads = loaded["result"]["loads"]
    for key, record in pushed["push"]["repos"].items():
        item = [i for i in loaded["items"] if i["repo"] == record["repo"] and i["branch"] == "main" and "subfolder" not in i][-1]
        torch.testing.assert_close(torch.tensor(loads[item["key"]]["logits"]), torch.tensor(record["logits"]), atol=1e-5, rtol=1e-5, msg=key)
    dev = pushed["push"]["repos"]["model-push"]["dev"]
    got = loads[f"{ORG}/model-push@{dev['commit']}"]["logits"]
    torch.testing.assert_close(torch.tensor(got), torch.tensor(dev["logits"]), atol=1e-5, rtol=1e-5)


def test_server_implements_what_the_clients_called(loaded, hub_server):
    assert hub_server.state.unknown_requests == []
    called = {(method, _endpoint_pattern(path)) for method, path, _ in hub_server.state.requests}
    assert EXPECTED_ENDPOINTS <= called, (EXPECTED_ENDPOINTS - called, called)
    # The loaders probe optional files (generation config, chat templates, ...) and take EntryNotFound in stride.
    assert any(status == 404 and "/resolve/" in path for _, path, status in hub_server.state.requests)


def test_server_error_codes(hub_server):
    """The 404s tell the clients what is missing (huggingface_hub maps X-Error-Code to its exception types)."""
    import urllib.error
    import urllib.request

    hub_server.state.create_repo(f"{ORG}/probe")
    cases = {
        f"/{ORG}/probe/resolve/main/missing.json": "EntryNotFound",
        f"/{ORG}/probe/resolve/no-such-branch/config.json": "RevisionNotFound",
        f"/{ORG}/nothing-here/resolve/main/config.json": "RepoNotFound",
    }
    for path, code in cases.items():
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(urllib.request.Request(hub_server.url + path, method="HEAD"), timeout=10)
        assert caught.value.code == 404 and caught.value.headers["X-Error-Code"] == code
    head = urllib.request.urlopen(urllib.request.Request(f"{hub_server.url}/{ORG}/probe/resolve/main/.gitattributes", method="HEAD"))
    commit = hub_server.state.repos[f"{ORG}/probe"].resolve("main")
    assert head.headers["X-Repo-Commit"] == commit.oid
    assert head.headers["ETag"] == f'"{commit.files[".gitattributes"].blob_id}"'
    del hub_server.state.repos[f"{ORG}/probe"]


def test_server_speaks_the_read_api_of_huggingface_hub(pushed, hub_server):
    """The endpoints the push and load paths did not need, through huggingface_hub's own client."""
    from huggingface_hub import HfApi, constants

    if constants.HF_HUB_OFFLINE:
        pytest.skip("HF_HUB_OFFLINE is set in this process")
    api = HfApi(endpoint=hub_server.url, token=TEST_TOKEN)
    repo_id = f"{ORG}/trainer-checkpoint"
    assert api.whoami()["name"] == "hisr-tester"
    refs = api.list_repo_refs(repo_id)
    assert [branch.target_commit for branch in refs.branches] == [hub_server.state.repos[repo_id].branches["main"]]
    commits = api.list_repo_commits(repo_id)
    assert [c.title for c in commits][:2] == ["End of training", "Training in progress, step 4, checkpoint"]
    tree = {entry.path for entry in api.list_repo_tree(repo_id, path_in_repo="last-checkpoint")}
    assert "last-checkpoint/modeling_hisr.py" in tree and "last-checkpoint/model.safetensors" in tree
    (info,) = api.get_paths_info(repo_id, ["model.safetensors"])
    assert info.lfs is not None and info.lfs.sha256 == hub_server.state.repos[repo_id].resolve("main").files["model.safetensors"].sha256
    model_info = api.model_info(repo_id)
    assert model_info.pipeline_tag == "text-classification" and "custom_code" in model_info.tags
    assert {"config.json", "handler.py"} <= {sibling.rfilename for sibling in model_info.siblings}


def _endpoint_pattern(path: str) -> str:
    path = re.sub(rf"/{ORG}/[\w.-]+?(?=\.git/|/|$)", "/{repo}", path)
    path = re.sub(r"/(preupload|commit|revision|tree|commits|paths-info)/[^/]+", r"/\1/{rev}", path)
    path = re.sub(r"/branch/[^/]+", "/branch/{branch}", path)
    path = re.sub(r"/resolve/[^/]+/.+$", "/resolve/{rev}/{path}", path)
    return re.sub(r"/__lfs_upload/\{repo\}/[0-9a-f]{64}$", "/__lfs_upload/{repo}/{oid}", path)


# ---------------------------------------------------------------------------------------------- failed pushes
def test_push_failing_with_500_names_repo_and_status(pushed, hub_server):
    errors = pushed["push"]["errors"]
    model_error = errors["model-500"]
    assert model_error["status_code"] == 500
    assert f"'{ORG}/model-fail-500'" in model_error["message"] and "HTTP 500" in model_error["message"]
    assert "/commit/main" in model_error["message"]
    background = errors["trainer-500-background"]
    assert len(background) == 2 and all("HTTP 500" in m and f"{ORG}/trainer-fail-500" in m for m in background)
    assert "checkpoint-2" in background[0] and "is intact" in background[0]
    assert errors["trainer-500"]["status_code"] == 500 and "trainer.push_to_hub()" in errors["trainer-500"]["message"]
    for repo_id in (f"{ORG}/model-fail-500", f"{ORG}/trainer-fail-500"):
        assert _commit_files(hub_server, repo_id) == []  # nothing but the initial commit


def test_failed_push_leaves_local_checkpoints_intact(pushed):
    local = pushed["push"]["local"]["trainer-fail-500"]
    output_dir = Path(local["output_dir"])
    files = {str(p.relative_to(output_dir)): p.stat().st_size for p in sorted(output_dir.rglob("*")) if p.is_file()}
    assert files == local["files"]
    for folder in (output_dir, output_dir / "checkpoint-2", output_dir / "checkpoint-4"):
        assert CODE_FILES | {"README.md", "config.json", "model.safetensors"} <= set(os.listdir(folder))
    model = BertForHierarchicalClassification.from_pretrained(output_dir).eval()
    torch.testing.assert_close(torch.tensor(hub_jobs.fixed_logits(model)), torch.tensor(local["logits"]))


def test_bad_token_names_the_status(pushed):
    error = pushed["push"]["errors"]["model-401"]
    assert error["status_code"] == 401
    assert f"'{ORG}/model-auth'" in error["message"] and "HTTP 401" in error["message"] and "write access" in error["message"]


def test_server_down(pushed):
    down = pushed["down"]
    for key in ("model", "trainer"):
        assert down[key]["type"] == "HubPushError" and down[key]["status_code"] is None
        assert "could not be reached" in down[key]["message"] and "127.0.0.1" in down[key]["message"]
    assert f"'{ORG}/down'" in down["model"]["message"] and f"'{ORG}/down-trainer'" in down["trainer"]["message"]
    assert down["files_after"] == down["files_before"]
    model = BertForHierarchicalClassification.from_pretrained(down["output_dir"]).eval()
    torch.testing.assert_close(torch.tensor(hub_jobs.fixed_logits(model)), torch.tensor(down["logits"]))


def test_describe_hub_error_without_http_answer():
    assert describe_hub_error(ValueError("boom")) == "ValueError: boom"
    assert "could not be reached" in describe_hub_error(ConnectionRefusedError(111, "Connection refused"))


# ---------------------------------------------------------------------------------------------- model card
CARD_PATTERNS = [
    r"^---\n", r"\n---\n\n# trainer-every-save\n",
    r"## Model details", r"\*\*Encoder:\*\* a `bert` encoder, 2 layers, hidden size 32, [\d.]+k parameters in all",
    r"hierarchy-GCN layer \(top-down edges weighted by the prior P\(child \| parent\) estimated from the training labels\)",
    r"\*\*Training data:\*\* 16 training documents, 6 for evaluation",
    r"### Label hierarchy", r"8 labels on 3 levels, 4 leaves, 6 parent links\.",
    r"\| Level \| Labels \|\n\|---\|---:\|\n\| 1 \| 2 \|\n\| 2 \| 3 \|\n\| 3 \| 3 \|",
    r"```text\nRoot\n├── A\n│   ├── A\.x\n│   │   ├── A\.x\.1\n",
    r"## How to use",
    r'pipeline\("hierarchical-text-classification", model="hisr-test/trainer-every-save", trust_remote_code=True\)',
    r'AutoModel\.from_pretrained\("hisr-test/trainer-every-save", trust_remote_code=True\)',
    r'AutoTokenizer\.from_pretrained\("hisr-test/trainer-every-save", trust_remote_code=True\)',
    r"model\.predict_label_paths\(\[\"[a-z ]+\"\], tokenizer\)",
    r'pipeline\("text-classification", model="hisr-test/trainer-every-save", trust_remote_code=True, top_k=None, '
    r"truncation=True\)",
    r"### Inference Endpoints", r"`handler\.py`",
    r"## Training details", r"### HiSR set-up", r"\| Loss \| BCE \+ 0\.01 x HiSR \|",
    r"### Training hyper-parameters", r"\| learning_rate \| 0\.001 \|", r"\| training_steps \| 4 \|",
    r"## Evaluation", r"### Validation",
    r"\| Metric \| Micro-F1 \| Macro-F1 \|\n\|---\|---:\|---:\|\n\| Overall \| \d+\.\d\d \| \d+\.\d\d \|\n"
    r"\| Path-constrained \(C-\) \| \d+\.\d\d \| \d+\.\d\d \|\n",
    r"\| Level 1 \| \d+\.\d\d \| \d+\.\d\d \|\n\| Level 2 \| [\d.]+ \| [\d.]+ \|\n\| Level 3 \| [\d.]+ \| [\d.]+ \|",
    r"C- scores can only rise", r"## Citation", r"@inproceedings\{zhou-etal-2025-novel,",
    r"## Framework versions", r"- Transformers: \d+\.\d+",
]


def test_model_card_of_a_trained_model(pushed, hub_server):
    """The card of a HiSRTrainer run as pushed: structure by patterns (in this order), metadata by value."""
    text = hub_server.state.repos[f"{ORG}/trainer-every-save"].resolve("main").files["README.md"].content.decode()
    position = 0
    for pattern in CARD_PATTERNS:
        match = re.compile(pattern, re.MULTILINE).search(text, position)
        assert match, f"{pattern!r} not found after position {position}:\n{text[position:position + 400]}"
        position = match.end()
    metadata = yaml.safe_load(text.split("---\n")[1])
    assert metadata["library_name"] == "transformers" and metadata["pipeline_tag"] == "text-classification"
    assert {"hierarchical-text-classification", "hisr", "custom_code"} <= set(metadata["tags"])
    eval_texts = [doc["text"] for doc in hub_jobs.documents(6, seed=2)]
    assert [w["text"] for w in metadata["widget"]] == eval_texts[:3]
    (entry,) = metadata["model-index"]
    metrics = {m["type"]: m["value"] for r in entry["results"] for m in r["metrics"]}
    assert {"micro_f1", "macro_f1", "c_micro_f1", "c_macro_f1", "level_3_macro_f1"} <= set(metrics)
    assert all(0 <= value <= 1 for value in metrics.values())
    assert {r["dataset"]["split"] for r in entry["results"]} == {"validation"}
    # The pushed card states the evaluation the trainer logged last.
    state = json.loads((pushed["workdir"] / "trainer-every-save" / "checkpoint-4" / "trainer_state.json").read_text())
    last_eval = [log for log in state["log_history"] if "eval_micro_f1" in log][-1]
    assert metrics["micro_f1"] == round(last_eval["eval_micro_f1"], 4)


def test_model_card_passes_hub_validation(pushed):
    validation = pushed["push"]["validation"]
    assert validation["trainer-every-save"] == validation["ModelCard.validate"] == "ok"
    assert validation["bad-pipeline-tag"].startswith("refused") and "pipeline_tag" in validation["bad-pipeline-tag"]


def test_save_pretrained_writes_card_and_handler(tmp_path):
    model = hub_jobs.tiny_model()
    card_data_for(model).language = "en"
    model.save_pretrained(tmp_path)
    assert {"README.md", "handler.py"} <= set(os.listdir(tmp_path))
    card = ModelCard.load(tmp_path / "README.md")
    assert card.data.language == "en" and "custom_code" in card.data.tags and card.data.get("model-index") is None
    assert "No evaluation results were recorded" in card.text and "your-org/your-hisr-model" in card.text
    assert "model_card_data" not in json.loads((tmp_path / "config.json").read_text())


def test_card_metadata_with_base_model_and_dataset():
    model = hub_jobs.tiny_model()
    data = HiSRModelCardData(
        language="en", license="apache-2.0", model_id="org/hisr-wos", base_model="google-bert/bert-base-uncased",
        dataset_id="org/web-of-science", dataset_name="Web of Science", train_size=30070,
        eval_results={"test": {"micro_f1": 0.871, "macro_f1": 0.8123, "p_micro_f1": 0.8, "p_macro_f1": 0.7}},
    )  # fmt: skip
    card = generate_model_card(model, data)
    metadata = card.data.to_dict()
    assert validate_metadata(metadata) == []
    assert metadata["base_model"] == "google-bert/bert-base-uncased" and metadata["datasets"] == ["org/web-of-science"]
    assert metadata["license"] == "apache-2.0" and metadata["model-index"][0]["name"] == "hisr-wos"
    (result,) = metadata["model-index"][0]["results"]
    assert result["dataset"] == {"name": "Web of Science", "type": "org/web-of-science", "split": "test"}
    assert [m["name"] for m in result["metrics"]] == ["Micro-F1", "Macro-F1", "P-Micro-F1", "P-Macro-F1"]
    assert "[google-bert/bert-base-uncased](https://huggingface.co/google-bert/bert-base-uncased)" in card.text
    assert "[Web of Science](https://huggingface.co/datasets/org/web-of-science) (30070 training documents)" in card.text
    assert re.search(r"\| Path-based \(P-\) \| 80\.00 \| 70\.00 \|", card.text)


def test_model_card_callback_fills_card_data(tmp_path):
    from types import SimpleNamespace

    from datasets import Dataset
    from transformers import TrainingArguments

    from hisr_hf.model_card import ModelCardCallback

    tokenizer = hub_jobs.build_tokenizer(tmp_path)
    model = hub_jobs.tiny_model()
    model.name_or_path = "google-bert/bert-base-uncased"
    evaluation = Dataset.from_dict({"input_ids": [tokenizer(text)["input_ids"] for text in hub_jobs.EXAMPLE_TEXTS]})
    trainer = SimpleNamespace(
        model=model, accelerator=SimpleNamespace(unwrap_model=lambda m: m), train_dataset=Dataset.from_dict({"x": [1] * 5}),
        eval_dataset=evaluation, processing_class=tokenizer, hub_model_id="org/run", args=SimpleNamespace(hub_model_id=None),
    )  # fmt: skip
    callback = ModelCardCallback(trainer)
    data = card_data_for(model)
    assert (data.train_size, data.eval_size, data.model_id) == (5, 2, "org/run")
    assert data.widget_texts == hub_jobs.EXAMPLE_TEXTS  # no text column: decoded from input_ids
    assert data.base_model == "google-bert/bert-base-uncased"
    args = TrainingArguments(str(tmp_path / "out"), eval_strategy="steps", save_strategy="steps", report_to="none",
                             load_best_model_at_end=True, metric_for_best_model="micro_f1", use_cpu=True)  # fmt: skip
    state = SimpleNamespace(global_step=2, best_global_step=2, max_steps=4)
    callback.on_train_begin(args, state, None)
    callback.on_evaluate(args, state, None, metrics={"eval_micro_f1": 0.9, "eval_macro_f1": 0.8})
    state.global_step = 4
    callback.on_evaluate(args, state, None, metrics={"eval_micro_f1": 0.5, "eval_macro_f1": 0.4})
    assert data.eval_results["validation"]["micro_f1"] == 0.5
    callback.on_train_end(args, state, None)  # the best checkpoint (step 2) is what load_best_model_at_end kept
    assert data.eval_results["validation"] == {"micro_f1": 0.9, "macro_f1": 0.8}
    assert data.hyperparameters["checkpoint_selection"] == "micro_f1" and data.hyperparameters["num_epochs"] == 3.0
    assert data.hyperparameters["learning_rate"] == 5e-5 and data.hyperparameters["head_learning_rate"] == 1e-3


def test_card_data_records_trainer_metrics():
    data = HiSRModelCardData()
    data.record_metrics({"eval_micro_f1": 0.5, "eval_macro_f1": 0.25, "eval_runtime": 1.0, "epoch": 2.0})
    data.record_metrics({"test_micro_f1": 0.4, "test_level_1_micro_f1": 0.9})
    assert data.eval_results == {
        "validation": {"micro_f1": 0.5, "macro_f1": 0.25, "runtime": 1.0},
        "test": {"micro_f1": 0.4, "level_1_micro_f1": 0.9},
    }
    with pytest.raises(ValueError, match="base_model"):
        HiSRModelCardData(base_model="/home/me/bert")


def test_hierarchy_tree_excerpt_is_compact():
    parents = {f"t{i}": None for i in range(4)} | {f"t{i}.c{j}": f"t{i}" for i in range(4) for j in range(12)}
    tree, shown, truncated = hierarchy_tree(LabelHierarchy.from_parents(parents), max_lines=20, max_children=5)
    lines = tree.splitlines()
    assert lines[0] == "Root" and len(lines) <= 21 and truncated and shown < 52
    assert "│   └── … 7 more" in tree


def test_template_is_packaged_identically():
    packaged = ROOT / "hisr_hf" / "model_cards" / TEMPLATE_NAME
    assert template_path() == packaged
    # One copy: model_cards/ of the repository links to the packaged template.
    assert (ROOT / "model_cards" / TEMPLATE_NAME).is_symlink()
    assert (ROOT / "model_cards" / TEMPLATE_NAME).resolve() == packaged.resolve()
    assert "model_cards/*.j2" in (ROOT / "setup.cfg").read_text(encoding="utf-8")


# ---------------------------------------------------------------------------------------------- inference
def test_pipeline_scores_every_label_and_decodes_to_paths(loaded, hub_server, tmp_path):
    outputs = loaded["result"]["pipelines"]["model-push"]
    folder = _materialise(hub_server, f"{ORG}/model-push", "main", tmp_path)
    model = BertForHierarchicalClassification.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    hierarchy = model.hierarchy
    for text, scores in zip(hub_jobs.EXAMPLE_TEXTS, outputs):
        assert sorted(s["label"] for s in scores) == sorted(hierarchy.labels)  # every label, sigmoid scores
        with torch.no_grad():
            probs = torch.sigmoid(model(**tokenizer(text, return_tensors="pt")).logits[0])
        for item in scores:
            assert item["score"] == pytest.approx(probs[hierarchy.label2id[item["label"]]].item(), abs=1e-5)
    for strategy, threshold in (("consistent", 0.5), ("consistent", 0.45), ("top_down", 0.45)):
        from_pipeline = decode_pipeline_outputs(outputs, hierarchy, threshold=threshold, strategy=strategy)
        direct = model.predict_label_paths(hub_jobs.EXAMPLE_TEXTS, tokenizer, threshold=threshold, strategy=strategy)
        assert [(p.labels, p.paths) for p in from_pipeline] == [(p.labels, p.paths) for p in direct]
        assert threshold == 0.5 or any(p.paths for p in direct)  # something to compare at the lower threshold


@pytest.mark.parametrize("repo", ["model-push", "save-push"])
def test_hierarchical_pipeline_without_hisr_hf(loaded, hub_server, tmp_path, repo):
    """pipeline("hierarchical-text-classification", trust_remote_code=True) in a process without hisr_hf gives what
    predict_label_paths gives, with the config's thresholds by default, truncating long texts."""
    assert f"{repo}:hierarchical" not in loaded["result"]["errors"] and not loaded["result"]["hisr_hf_imported"]
    outputs = loaded["result"]["hierarchical"][repo]
    folder = _materialise(hub_server, f"{ORG}/{repo}", "main", tmp_path)
    model = BertForHierarchicalClassification.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
    assert (model.config.thresholds is not None) == (repo == "save-push")

    def expected(texts, threshold=None, strategy="consistent", top_k=None, batch_size=None):
        predictions = model.predict_label_paths(texts, tokenizer, threshold=threshold, strategy=strategy, max_length=64)
        return [{"labels": p.labels, "paths": p.paths, "scores": p.scores} for p in predictions]

    calls = hub_jobs.HIERARCHICAL_CALLS
    for (texts, kwargs), got in zip(calls[:2] + calls[3:4], [outputs[0], outputs[1], outputs[3]]):
        want = expected(texts, **kwargs)
        assert [(g["labels"], g["paths"]) for g in got] == [(w["labels"], w["paths"]) for w in want]
        for g, w in zip(got, want):
            assert g["scores"] == pytest.approx(w["scores"], abs=1e-5)
    assert any(g["paths"] for g in outputs[1])  # something decoded at the lower threshold
    # top_k=1: the most probable path of each text, and only its labels
    for got, full in zip(outputs[2], expected(calls[2][0], threshold=0.3)):
        assert len(got["paths"]) == min(1, len(full["paths"]))
        if full["paths"]:
            best = max(full["paths"], key=lambda path: full["scores"][path[-1]])
            assert got["paths"] == [best] and got["labels"] == [label for label in full["labels"] if label in best]
    empty, blank, long = outputs[4]
    assert empty == blank == {"labels": [], "paths": [], "scores": {}}
    assert (long["labels"], long["paths"]) == (lambda w: (w["labels"], w["paths"]))(expected(calls[4][0][2:])[0])
    assert outputs[5]["labels"] == outputs[0][0]["labels"]  # a string in, a dict out
    assert outputs[6] == "hierarchical-text-classification takes a string or a list of strings; item 1 is a int (7)."
    assert outputs[7] == "HierarchicalTextClassificationPipeline"


def test_save_pretrained_push_to_hub_commits_card_handler_and_pipeline(pushed, hub_server):
    (oid, title, files), = _commit_files(hub_server, f"{ORG}/save-push")  # fmt: skip
    assert title == "Saved and pushed"
    assert {"README.md", "handler.py", "pipeline_hisr.py", "config.json", "model.safetensors"} <= files
    assert CODE_FILES <= files and TOKENIZER_FILES <= files
    commit = hub_server.state.repos[f"{ORG}/save-push"].resolve("main")
    card = ModelCard(commit.files["README.md"].content.decode())
    assert "hisr" in card.data.tags and "hierarchical-text-classification" in card.text
    config = json.loads(commit.files["config.json"].content)
    assert config["thresholds"] == hub_jobs.SAVED_THRESHOLDS
    assert config["custom_pipelines"]["hierarchical-text-classification"]["impl"] == (
        "pipeline_hisr.HierarchicalTextClassificationPipeline"
    )


def test_decode_pipeline_outputs_needs_every_label():
    tree_hierarchy = hub_jobs.hierarchy()
    with pytest.raises(ValueError, match="top_k=None"):
        decode_pipeline_outputs([{"label": "A", "score": 0.9}], tree_hierarchy)
    with pytest.raises(ValueError, match="'Z'"):
        decode_pipeline_outputs([{"label": "Z", "score": 0.9}], tree_hierarchy)


def test_consistent_decoding_effect_on_metrics():
    """What the README and the card say: C- can only rise, P- and level 1 do not change."""
    tree_hierarchy = hub_jobs.hierarchy()
    metrics = pytest.importorskip("hisr_hf.metrics")
    generator = torch.Generator().manual_seed(0)
    probs = torch.rand(200, tree_hierarchy.num_labels, generator=generator)
    leaves = tree_hierarchy.leaves()
    gold = tree_hierarchy.encode([[leaves[i % len(leaves)]] for i in range(200)])
    raw = metrics.hierarchical_f1(probs > 0.5, gold, tree_hierarchy)
    mask = torch.zeros_like(probs, dtype=torch.bool)
    for row, prediction in enumerate(decode_label_paths(probs, tree_hierarchy)):
        mask[row, [tree_hierarchy.label2id[label] for label in prediction.labels]] = True
    decoded = metrics.hierarchical_f1(mask.numpy(), gold, tree_hierarchy)
    assert (mask <= (probs > 0.5)).all()
    assert decoded["c_micro_f1"] >= raw["c_micro_f1"] and decoded["c_macro_f1"] >= raw["c_macro_f1"]
    for key in ("p_micro_f1", "p_macro_f1", "level_1_micro_f1", "level_1_macro_f1"):
        assert decoded[key] == pytest.approx(raw[key])
    assert decoded["micro_f1"] != pytest.approx(raw["micro_f1"])  # plain Micro-F1 does move


# ---------------------------------------------------------------------------------------------- widgets
def test_widget_export_loads_without_remote_code(pushed, loaded, hub_server):
    commit = hub_server.state.repos[f"{ORG}/widget-export"].resolve("main")
    assert not CODE_FILES & set(commit.files) and TOKENIZER_FILES <= set(commit.files)
    config = json.loads(commit.files["config.json"].content)
    assert config["architectures"] == ["BertForSequenceClassification"] and "auto_map" not in config
    assert config["problem_type"] == "multi_label_classification" and config["model_type"] == "bert"
    card = ModelCard(commit.files["README.md"].content.decode())
    assert "custom_code" not in card.data.tags and "trust_remote_code=True" not in card.text
    key = f"{ORG}/widget-export@{commit.oid}"
    expected = pushed["push"]["repos"]["widget-export"]["logits"]
    torch.testing.assert_close(torch.tensor(loaded["result"]["loads"][key]["logits"]), torch.tensor(expected), atol=1e-6, rtol=1e-6)
    outputs = loaded["result"]["pipelines"]["widget-export"]
    hierarchy = LabelHierarchy.from_dict(config["hierarchy"])
    assert all(len(scores) == hierarchy.num_labels for scores in outputs)
    assert len(decode_pipeline_outputs(outputs, hierarchy)) == 2


def test_export_gives_identical_logits(tmp_path):
    model = hub_jobs.tiny_model(seed=4, structure_encoder="none", text_feature="pooler")
    tokenizer = hub_jobs.build_tokenizer(tmp_path / "tokenizer")
    stock = export_to_sequence_classification(model, tmp_path / "export", tokenizer=tokenizer)
    batch = tokenizer(hub_jobs.EXAMPLE_TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        assert torch.equal(stock(**batch).logits, model(**batch).logits)
        reloaded = AutoModelForSequenceClassification.from_pretrained(tmp_path / "export").eval()
        assert type(reloaded) is BertForSequenceClassification
        assert torch.equal(reloaded(**batch).logits, model(**batch).logits)
    assert reloaded.config.id2label == model.config.id2label


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"structure_encoder": "none", "text_feature": "cls"}, r"always applies BERT's pooler.*text_feature='pooler'"),
        ({"structure_encoder": "gcn", "text_feature": "pooler"}, r"structure_encoder='gcn'.*handler\.py"),
    ],
)
def test_export_refuses_models_without_a_stock_equivalent(overrides, message):
    with pytest.raises(ValueError, match=message):
        export_to_sequence_classification(hub_jobs.tiny_model(**overrides))


def test_endpoint_handler_through_the_hub(loaded, hub_server, tmp_path):
    responses = loaded["result"]["handlers"]["model-push"]
    folder = _materialise(hub_server, f"{ORG}/model-push", "main", tmp_path)
    model = BertForHierarchicalClassification.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    expected = [
        model.predict_label_paths(hub_jobs.EXAMPLE_TEXTS[:1], tokenizer),
        model.predict_label_paths(hub_jobs.EXAMPLE_TEXTS, tokenizer, threshold=0.45, strategy="top_down"),
    ]
    assert any(p.paths for p in expected[1])
    for response, predictions in zip(responses, expected):
        assert len(response) == len(predictions)
        for got, want in zip(response, predictions):
            assert (got["labels"], got["paths"]) == (want.labels, want.paths)
            assert got["scores"] == pytest.approx(want.scores, abs=1e-5)


def test_endpoint_handler_rejects_bad_requests(tmp_path):
    model = hub_jobs.tiny_model()
    model.save_pretrained(tmp_path)
    hub_jobs.build_tokenizer(tmp_path / "tok").save_pretrained(tmp_path)
    spec = importlib.util.spec_from_file_location("hisr_test_handler", tmp_path / "handler.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    handler = module.EndpointHandler(str(tmp_path))
    (single,) = handler({"inputs": "apple xenon one"})
    assert set(single) == {"labels", "paths", "scores"}
    with pytest.raises(ValueError, match="inputs"):
        handler({"inputs": 3})
    with pytest.raises(ValueError, match=r"Unknown parameter\(s\) \['temperature'\]"):
        handler({"inputs": "apple", "parameters": {"temperature": 3}})
    (top,) = handler({"inputs": "apple xenon one", "parameters": {"top_k": 1, "threshold": 0.2}})
    assert len(top["paths"]) == 1


def test_readme_hub_and_inference_snippets_use_the_public_api():
    """The README's "Share on the Hub" and "Inference" snippets compile and import what exists."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    if "## Share on the Hub" not in readme:
        pytest.skip("README.md has no 'Share on the Hub' section")
    sections = readme[readme.index("## Share on the Hub") :]
    blocks = re.findall(r"```python\n(.*?)```", sections, flags=re.DOTALL)
    assert len(blocks) >= 3
    for block in blocks:
        code = "\n".join(line[2:] if line.startswith("  ") else line for line in block.splitlines())
        compile(code, "README.md", "exec")
        imports = "\n".join(line for line in code.splitlines() if line.startswith(("from ", "import ")))
        exec(compile(imports, "README.md", "exec"), {})
