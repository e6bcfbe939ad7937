"""hisr_hf: hierarchical text classification with HiSR for Hugging Face Transformers."""

from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification

from .configuration_hisr import HiSRConfig
from .hierarchy import LabelHierarchy
from .hub import install_hooks as _install_hub_hooks
from .loss import hisr_loss, node_loss
from .modeling_hisr import (
    BertForHierarchicalClassification,
    HierarchicalClassifierOutput,
    HierarchyGCN,
    HiSRForHierarchicalClassification,
)

__version__ = "0.1.0"

AutoConfig.register(HiSRConfig.model_type, HiSRConfig, exist_ok=True)
# A checkpoint saved by BertForHierarchicalClassification (every hisr_hf 0.1 checkpoint) loads as that class.
AutoModel.register(HiSRConfig, HiSRForHierarchicalClassification, exist_ok=True)
AutoModelForSequenceClassification.register(HiSRConfig, HiSRForHierarchicalClassification, exist_ok=True)
# Saving copies the configuration, modeling, hierarchy and loss files next to the weights, so the checkpoint
# loads with `trust_remote_code=True` where hisr_hf is not installed.
HiSRConfig.register_for_auto_class()
HiSRForHierarchicalClassification.register_for_auto_class("AutoModel")
# `save_pretrained` also writes the model card and handler.py, and `push_to_hub` keeps them (hisr_hf/hub.py).
_install_hub_hooks()

__all__ = [
    "BertForHierarchicalClassification",
    "HiSRConfig",
    "HiSRForHierarchicalClassification",
    "HierarchicalClassifierOutput",
    "HierarchyGCN",
    "LabelHierarchy",
    "hisr_loss",
    "node_loss",
]
