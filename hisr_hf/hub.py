"""Share HiSR models on the Hugging Face Hub: pushes that always load with `trust_remote_code`, model cards on every
save, a stock `BertForSequenceClassification` export for the Hub's widgets and an Inference Endpoints handler.

- `push_to_hub(model, repo_id, tokenizer=...)` (also what `model.push_to_hub(...)` runs once `hisr_hf` is imported):
  one commit with the weights, config, the modeling code, the tokenizer, `handler.py` and the rendered model card.
- `HubTrainerMixin` (part of `HiSRTrainer`): every revision the Trainer pushes, whatever `hub_strategy`, carries the
  code and the card; a failed push says which repo and which HTTP status, and leaves the local files alone.
- `export_to_sequence_classification(model, ...)`: the "- GCN" variant as a stock checkpoint (no custom code), which
  the Hub's serverless widget runs.
- `write_endpoint_handler(directory)`: `handler.py` with `EndpointHandler` for a dedicated Inference Endpoint, the way
  to serve the full GCN model.

The modeling files travel with checkpoints and import none of this; `install_hooks()` (run by `import hisr_hf`) lets
`save_pretrained` write the card and `handler.py`, and `push_to_hub` keep them.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from huggingface_hub import CommitInfo, HfApi, constants
from transformers import BertConfig, BertForSequenceClassification, TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR
from transformers.utils import logging

from .model_card import TEXT_FEATURE_NAMES, ModelCardCallback, card_data_for, write_model_card
from .modeling_hisr import HiSRPreTrainedModel

logger = logging.get_logger(__name__)

HANDLER_NAME = "handler.py"
_HANDLER_SOURCE = Path(__file__).resolve().parent / "endpoint_handler.py"
# Files that make a folder load with trust_remote_code, besides config and weights: the modeling code and the card.
_CODE_AND_CARD = ("*.py", "README.md")


class HubPushError(RuntimeError):
    """A push to the Hub failed. The message names the repo, the step and the HTTP status (or the unreachable
    endpoint); `repo_id`, `step` and `status_code` (`None` when no HTTP answer came) hold them for code."""

    def __init__(self, repo_id: str, step: str, error: BaseException, local_note: str):
        self.repo_id = repo_id
        self.step = step
        self.status_code = _status_code(error)
        super().__init__(f"Pushing to the Hub repo {repo_id!r} failed while {step}: {describe_hub_error(error)}. {local_note}")


def describe_hub_error(error: BaseException) -> str:
    """One line saying what went wrong talking to the Hub: `HTTP 500 Internal Server Error from POST <url> (<server
    message>)`, or that the endpoint could not be reached."""
    for err in _chain(error):
        response = getattr(err, "response", None)
        status = getattr(response, "status_code", None)
        if isinstance(status, int):
            try:
                where = f" from {response.request.method} {response.request.url}"
            except (AttributeError, RuntimeError):  # a response built without its request
                where = ""
            reason = getattr(response, "reason_phrase", "") or ""
            server = getattr(err, "server_message", None)
            text = f"HTTP {status} {reason}".rstrip() + where + (f" ({server})" if server else "")
            if status in (401, 403):
                text += "; check that HF_TOKEN (or `token=`) is a token with write access to this repo"
            return text
    for err in _chain(error):
        names = {cls.__name__ for cls in type(err).__mro__}
        if isinstance(err, OSError) or names & {"ConnectError", "ConnectTimeout", "NetworkError", "TransportError"}:
            return f"the Hub at {constants.ENDPOINT} could not be reached ({type(err).__name__}: {err})"
    return f"{type(error).__name__}: {error}"


def push_folder(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    commit_message: str = "Upload HiSR model",
    commit_description: str | None = None,
    private: bool | None = None,
    token: str | bool | None = None,
    revision: str | None = None,
    create_pr: bool = False,
    ignore_patterns: Iterable[str] | None = None,
) -> CommitInfo:
    """Create `repo_id` if needed and upload `folder` as one commit. Failures raise `HubPushError`.

    Example:

    ```python
    >>> export_to_sequence_classification(model, "widget-model", tokenizer=tokenizer)  # doctest: +SKIP
    >>> push_folder("widget-model", "org/hisr-wos-widget")  # doctest: +SKIP
    ```
    """
    note = f"The local folder {folder} is intact; push it again once the problem is fixed."
    repo_id = _create_repo(repo_id, private, token, note)
    return _upload_folder(folder, repo_id, note, commit_message=commit_message, commit_description=commit_description,
                          token=token, revision=revision, create_pr=create_pr, ignore_patterns=ignore_patterns)  # fmt: skip


def _create_repo(repo_id: str, private: bool | None, token: str | bool | None, note: str) -> str:
    """Create `repo_id` if it does not exist; returns its full name (`namespace/name`)."""
    try:
        return HfApi().create_repo(repo_id, private=private, token=token, exist_ok=True).repo_id
    except Exception as error:
        raise HubPushError(repo_id, "creating the repo", error, note) from error


def _upload_folder(
    folder: str | os.PathLike,
    repo_id: str,
    note: str,
    *,
    commit_message: str,
    commit_description: str | None,
    token: str | bool | None,
    revision: str | None,
    create_pr: bool,
    ignore_patterns: Iterable[str] | None = None,
) -> CommitInfo:
    """The one upload path of `push_folder` and `push_to_hub`: `folder` as one commit (on `revision`, a branch
    created if needed)."""
    api = HfApi()
    try:
        if revision is not None and not revision.startswith("refs/pr"):
            api.create_branch(repo_id, branch=revision, token=token, exist_ok=True)
        return api.upload_folder(
            repo_id=repo_id,
            folder_path=str(folder),
            commit_message=commit_message,
            commit_description=commit_description,
            token=token,
            revision=revision,
            create_pr=create_pr,
            ignore_patterns=list(ignore_patterns) if ignore_patterns else None,
        )
    except Exception as error:
        raise HubPushError(repo_id, "uploading the files", error, note) from error


def push_to_hub(
    model,
    repo_id: str,
    *,
    tokenizer=None,
    commit_message: str | None = None,
    commit_description: str | None = None,
    private: bool | None = None,
    token: str | bool | None = None,
    revision: str | None = None,
    create_pr: bool = False,
    max_shard_size: int | str = "50GB",
    tags: list[str] | None = None,
    **unused,
) -> CommitInfo:
    """Push a `BertForHierarchicalClassification` as one commit that loads with
    `AutoModel.from_pretrained(repo_id, trust_remote_code=True)`: config, weights, the modeling code, `handler.py`,
    the model card (README.md) and, when given, the tokenizer (the pipeline and the handler need it).

    `model.push_to_hub(repo_id, ...)` runs this once `hisr_hf` is imported; it takes the arguments of
    `PreTrainedModel.push_to_hub` plus `tokenizer`.

    Raises:
        `HubPushError`: naming the repo, the step and the HTTP status (or the unreachable endpoint).

    Example:

    ```python
    >>> model.push_to_hub("org/hisr-wos", tokenizer=tokenizer)  # doctest: +SKIP
    >>> AutoModel.from_pretrained("org/hisr-wos", trust_remote_code=True)  # doctest: +SKIP
    ```
    """
    if unused:
        logger.warning("push_to_hub ignores the argument(s) %s.", sorted(unused))
    note = "Nothing was changed locally; call push_to_hub again once the problem is fixed."
    repo_id = _create_repo(repo_id, private, token, note)
    card_data = card_data_for(model)
    card_data.model_id = repo_id
    card_data.tags.extend(tag for tag in tags or [] if tag not in card_data.tags)
    with tempfile.TemporaryDirectory() as folder:
        model.save_pretrained(folder, max_shard_size=max_shard_size)  # the save hook writes README.md and handler.py
        if tokenizer is not None:
            tokenizer.save_pretrained(folder)
        return _upload_folder(folder, repo_id, note, commit_message=commit_message or "Upload HiSR model",
                              commit_description=commit_description, token=token, revision=revision,
                              create_pr=create_pr)  # fmt: skip


def write_endpoint_handler(directory: str | os.PathLike) -> str:
    """Write `handler.py` (an Inference Endpoints custom handler, `EndpointHandler`) into `directory`.

    The handler loads the repository's tokenizer and model (`trust_remote_code`) and answers
    `{"inputs": text or [texts], "parameters": {"threshold", "strategy"}}` with `{"labels", "paths", "scores"}` per
    text. It is how the full GCN model is served, since the Hub's serverless widgets refuse custom code.
    """
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, HANDLER_NAME)
    shutil.copyfile(_HANDLER_SOURCE, path)
    return path


def export_to_sequence_classification(model, save_directory: str | os.PathLike | None = None, tokenizer=None):
    """Turn a "- GCN" HiSR model into a stock `BertForSequenceClassification` with the same logits.

    The Hub's serverless widget and the default Inference API refuse models that need custom code. A model trained
    with `structure_encoder="none"` and `text_feature="pooler"` is exactly BERT + pooler + dropout + linear, i.e.
    `BertForSequenceClassification`: this copies its weights into one (multi-label, `id2label` from the hierarchy,
    the hierarchy itself kept in `config.hierarchy`), which loads without `trust_remote_code`.

    Args:
        model (`HiSRForHierarchicalClassification` with a BERT encoder): trained with `structure_encoder="none"`, `text_feature="pooler"`.
        save_directory (`str`, *optional*): where to save the export, with its model card and the tokenizer.
        tokenizer (*optional*): saved next to the export so that `pipeline(...)` finds it.

    Returns:
        `BertForSequenceClassification` in eval mode.

    Raises:
        `ValueError`: for a GCN model (no stock equivalent) or `text_feature="cls"` (the stock class always applies
        BERT's pooler, so the logits would differ).

    Example:

    ```python
    >>> stock = export_to_sequence_classification(model, "widget-model", tokenizer=tokenizer)  # doctest: +SKIP
    >>> push_folder("widget-model", "org/hisr-wos-widget")  # doctest: +SKIP
    ```
    """
    config = model.config
    if getattr(config, "structure_encoder", None) != "none":
        raise ValueError(
            f"Only structure_encoder='none' models (the '- GCN' variant) have a stock transformers equivalent; this "
            f"one uses structure_encoder={config.structure_encoder!r}. Serve it with handler.py on an Inference "
            "Endpoint (hisr_hf.hub.write_endpoint_handler) or load it with trust_remote_code=True."
        )
    if config.text_feature != "pooler":
        raise ValueError(
            "BertForSequenceClassification always applies BERT's pooler (dense + tanh) to [CLS] before its classifier, "
            f"but this model was trained on {TEXT_FEATURE_NAMES[config.text_feature]!r} (text_feature="
            f"{config.text_feature!r}) and has no "
            "trained pooler, so the exported logits would differ. Train with "
            "HiSRConfig(structure_encoder='none', text_feature='pooler', ...) (run_htc.py: --structure_encoder none "
            "--text_feature pooler) to export it, or serve this model with handler.py / trust_remote_code."
        )
    encoder_config = getattr(config, "text_encoder", None) or config
    if encoder_config.model_type not in ("bert", "hisr"):
        raise ValueError(
            f"Only BERT encoders have a stock equivalent of the '- GCN' head (BertForSequenceClassification = pooler + "
            f"dropout + linear); this model's encoder is {encoder_config.model_type!r}. Serve it with handler.py or "
            "trust_remote_code=True."
        )
    bert_fields = set(BertConfig.__dataclass_fields__) - {"id2label", "label2id", "problem_type", "architectures", "auto_map"}
    values = {key: value for key, value in encoder_config.to_dict().items() if key in bert_fields}
    values["classifier_dropout"] = config.classifier_dropout
    stock_config = BertConfig(
        **values,
        id2label=dict(config.id2label),
        label2id=dict(config.label2id),
        problem_type="multi_label_classification",
        architectures=["BertForSequenceClassification"],
    )
    stock_config.hierarchy = config.hierarchy  # so that hisr_hf.decoding can still decode label paths
    stock = BertForSequenceClassification(stock_config).to(dtype=model.dtype)
    prefix = f"{model.base_model_prefix}."
    state = {
        ("bert." + key[len(prefix):] if key.startswith(prefix) else key): value
        for key, value in model.state_dict().items()
        if key.startswith((prefix, "classifier."))
    }
    missing, unexpected = stock.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"Weights do not map onto BertForSequenceClassification: missing {missing}, unexpected {unexpected}.")
    stock.eval()
    if save_directory is not None:
        stock.save_pretrained(save_directory)
        if tokenizer is not None:
            tokenizer.save_pretrained(save_directory)
        card_data = card_data_for(model).copy(custom_code=False)
        write_model_card(model, save_directory, card_data)
    return stock


# ---------------------------------------------------------------------------------------------- model hooks
def save_hook(model, save_directory: str | os.PathLike) -> None:
    """After `save_pretrained`: write the model card (README.md) and `handler.py` next to the weights."""
    write_model_card(model, save_directory)
    write_endpoint_handler(save_directory)


def install_hooks() -> None:
    """Let `save_pretrained` and `push_to_hub` of HiSR models write and keep the model card (see modeling_hisr.py)."""
    HiSRPreTrainedModel._hub_hooks.update(save=save_hook, push=push_to_hub, push_folder=push_folder)


# ---------------------------------------------------------------------------------------------- Trainer
class HubTrainerMixin:
    """Hub behaviour of `HiSRTrainer` (`class HiSRTrainer(HubTrainerMixin, Trainer)`).

    - The model card is the HiSR card (`ModelCardCallback` fills it; `create_model_card` renders it instead of the
      Trainer's generic one), written into every saved folder and pushed with it.
    - The stock Trainer pushes `output_dir` after copying only config and weights from the new checkpoint; here the
      modeling code, `handler.py` and the card are copied as well, so every revision it creates (all
      `hub_strategy` values) loads with `trust_remote_code=True`.
    - A failed push raises (blocking pushes) or logs (background pushes during training) a `HubPushError` naming the
      repo and the HTTP status; `hub_push_failures` lists the background ones. Local checkpoints are never touched.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.hub_push_failures: list[str] = []
        self.add_callback(ModelCardCallback(self))
        self.add_callback(CodeAndCardPushCallback())

    def _hub_repo_name(self) -> str:
        return getattr(self, "hub_model_id", None) or self.args.hub_model_id or Path(self.args.output_dir).absolute().name

    def init_hf_repo(self, token: str | None = None, private: bool | None = None) -> None:
        try:
            super().init_hf_repo(token=token, private=private)
        except Exception as error:
            note = (
                f"Nothing was trained or pushed yet and the files in {self.args.output_dir} are untouched; fix the "
                "problem, or set push_to_hub=False to train without the Hub."
            )
            raise HubPushError(self._hub_repo_name(), "creating the repo", error, note) from error
        if getattr(self, "hub_model_id", None) and getattr(self, "model", None) is not None:
            card_data_for(self.accelerator.unwrap_model(self.model)).model_id = self.hub_model_id

    def create_model_card(
        self,
        language: str | None = None,
        license: str | None = None,
        tags: str | list[str] | None = None,
        model_name: str | None = None,
        finetuned_from: str | None = None,
        tasks: str | list[str] | None = None,
        dataset_tags: str | list[str] | None = None,
        dataset: str | list[str] | None = None,
        dataset_args: str | list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        """Write the HiSR model card to `output_dir/README.md` (replaces the Trainer's generic card); the arguments
        of `Trainer.create_model_card` fill the matching fields of `model.model_card_data`."""
        if not self.is_world_process_zero():
            return
        model = self.accelerator.unwrap_model(self.model)
        data = card_data_for(model)
        data.language = language or data.language
        data.license = license or data.license
        data.model_name = model_name or data.model_name
        data.base_model = finetuned_from or data.base_model
        extra = [tags] if isinstance(tags, str) else list(tags or [])
        data.tags.extend(tag for tag in extra if tag not in data.tags)
        dataset_ids = [dataset_tags] if isinstance(dataset_tags, str) else list(dataset_tags or [])
        data.dataset_id = dataset_ids[0] if dataset_ids else data.dataset_id
        names = [dataset] if isinstance(dataset, str) else list(dataset or [])
        data.dataset_name = names[0] if names else data.dataset_name
        os.makedirs(self.args.output_dir, exist_ok=True)
        write_model_card(model, self.args.output_dir)

    def push_to_hub(self, commit_message: str | None = "End of training", blocking: bool = True, token=None,
                    revision=None, private=None, **kwargs):  # fmt: skip
        try:
            return super().push_to_hub(
                commit_message=commit_message, blocking=blocking, token=token, revision=revision, private=private, **kwargs
            )
        except HubPushError:
            raise
        except Exception as error:
            note = f"The local files in {self.args.output_dir} are intact; call trainer.push_to_hub() again once fixed."
            raise HubPushError(self._hub_repo_name(), "pushing the output directory", error, note) from error

    def _push_from_checkpoint(self, checkpoint_folder: str) -> None:
        # The code and the card reach output_dir through `CodeAndCardPushCallback.on_push_begin`, which the Trainer
        # fires only when this push really starts. Here each new background upload gets a done-callback that turns
        # a failure into a logged `HubPushError` (the stock Trainer drops those silently); the futures are only
        # reachable through `push_in_progress`.
        known = set(map(id, self.push_in_progress.jobs)) if self.push_in_progress is not None else set()
        super()._push_from_checkpoint(checkpoint_folder)
        if self.push_in_progress is not None:
            for job in self.push_in_progress.jobs:
                if id(job) not in known:
                    job.add_done_callback(self._report_push(checkpoint_folder))

    def _report_push(self, checkpoint_folder: str):
        def report(job) -> None:
            error = job.exception()
            if error is None:
                return
            note = f"The local checkpoint {checkpoint_folder} is intact; training goes on."
            message = str(HubPushError(self._hub_repo_name(), f"pushing {Path(checkpoint_folder).name}", error, note))
            self.hub_push_failures.append(message)
            logger.error(message)

        return report


class CodeAndCardPushCallback(TrainerCallback):
    """Before the Trainer pushes `output_dir` during training, copy the modeling code, `handler.py` and the card of
    the checkpoint it pushes from (the stock push copies only config and weights), so that every revision loads with
    `trust_remote_code=True`. `on_push_begin` fires only once a push really starts, so no file that an upload in
    flight is reading gets rewritten."""

    def on_push_begin(self, args, state, control, **kwargs):
        checkpoint = Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
        if checkpoint.is_dir():
            copy_code_and_card(checkpoint, args.output_dir)


def copy_code_and_card(source: str | os.PathLike, target: str | os.PathLike) -> list[str]:
    """Copy the modeling code (`*.py`, handler included) and README.md of a saved folder into another one."""
    copied = []
    for pattern in _CODE_AND_CARD:
        for path in sorted(Path(source).glob(pattern)):
            shutil.copyfile(path, Path(target) / path.name)
            copied.append(path.name)
    return copied


def _chain(error: BaseException) -> list[BaseException]:
    seen, chain = set(), []
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        chain.append(error)
        error = error.__cause__ or error.__context__
    return chain


def _status_code(error: BaseException) -> int | None:
    for err in _chain(error):
        status = getattr(getattr(err, "response", None), "status_code", None)
        if isinstance(status, int):
            return status
    return None


__all__ = [
    "HubPushError",
    "CodeAndCardPushCallback",
    "HubTrainerMixin",
    "copy_code_and_card",
    "describe_hub_error",
    "export_to_sequence_classification",
    "install_hooks",
    "push_folder",
    "push_to_hub",
    "write_endpoint_handler",
]
