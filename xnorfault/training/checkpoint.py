"""Checkpoints of training jobs, read as untrusted input.

A checkpoint is a file that anyone may hand over with a run folder. It is loaded with
``torch.load(weights_only=True)``: PyTorch's restricted unpickler accepts tensors, plain
containers, numbers and strings (and ``collections.Counter``, which ``MultiStepLR`` keeps its
milestones in) and refuses every other global, so an object with a ``__reduce__`` planted in
the file is never constructed and no code in it runs. The content is then checked against what
:class:`xnorfault.training.runner.Run` writes before anything is built from it.
"""

from __future__ import annotations

import re
from pathlib import Path

from xnorfault.errors import XnorfaultError

REQUIRED_KEYS = ("model", "model_config")


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """The content of checkpoint ``path``, loaded without running code from it.

    Raises :class:`XnorfaultError` (one line) for a missing, truncated, malicious or foreign file.
    """
    import pickle

    import torch

    path = Path(path)
    if not path.is_file():
        raise XnorfaultError(f"checkpoint {path} is missing: train the run again to recreate it")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        refused = re.search(r"GLOBAL ([\w.]+)", str(error))
        what = f" (it asks for {refused.group(1)})" if refused else ""
        raise XnorfaultError(
            f"checkpoint {path} holds objects other than tensors and plain data{what} and was "
            "not loaded: use checkpoints written by xnorfault train only"
        ) from None
    except Exception as error:  # truncated zip, wrong magic, unreadable file: many types
        raise XnorfaultError(
            f"checkpoint {path} is unreadable ({type(error).__name__}): it may be truncated; "
            "delete it to retrain that job, or restore it"
        ) from None
    if not isinstance(state, dict) or any(key not in state for key in REQUIRED_KEYS):
        raise XnorfaultError(
            f"checkpoint {path} is not an xnorfault checkpoint (expected the keys "
            f"{', '.join(REQUIRED_KEYS)})"
        )
    if not isinstance(state["model_config"], dict) or "name" not in state["model_config"]:
        raise XnorfaultError(f"checkpoint {path} has no model description (model_config.name)")
    return state
