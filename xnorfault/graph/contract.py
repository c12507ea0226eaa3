"""The model contract: every name that xnorfault's exported and injected models, its runtimes,
bundles and the LCE worker agree on, spelled once.

An injected model takes the images at :data:`INPUT_NAME`, a flip seed at :data:`SEED_INPUT`,
and for every binary site two rate inputs, P(+1→−1) and P(−1→+1) (scalars; vectors of one
rate per address in a model injected with rate maps). ONNX names them
``p_flip_pos.SITE`` / ``p_flip_neg.SITE``; TFLite signature names may hold only letters, digits
and ``_``, so the LCE export names them ``p_flip_pos_SITE`` / ``p_flip_neg_SITE``. Both
spellings come from :func:`rate_input_names` and are read back by :func:`parse_rate_input`.

Metadata (ONNX ``metadata_props``, JSON values) lives under the keys below. Imports nothing
beyond the standard library, so the LCE environment and a Raspberry Pi can import it.
"""

from __future__ import annotations

from typing import Literal

INPUT_NAME = "input"
SEED_INPUT = "flip_seed"

METADATA_PREFIX = "xnorfault."
SITES_KEY = "xnorfault.binary_sites"
INJECTED_KEY = "xnorfault.injected"
PREPROCESSING_KEY = "xnorfault.preprocessing"
MODEL_KEY = "xnorfault.model"
SOURCE_RUN_KEY = "xnorfault.source_run"
PARITY_KEY = "xnorfault.parity"  # the export's agreement with the trained network
OUTPUT_KEY = "xnorfault.output"  # the graph output holding the logits, where a model has several

ModelFormat = Literal["onnx", "tflite"]
Direction = Literal["pos", "neg"]
RATE_PREFIX = "p_flip_"
DIRECTIONS: tuple[Direction, Direction] = ("pos", "neg")  # P(+1→−1), P(−1→+1)
_SEPARATORS = {"onnx": ".", "tflite": "_"}


def metadata_key(name: str) -> str:
    """The ``metadata_props`` key of an exported model's ``name`` (``classes`` →
    ``xnorfault.classes``)."""
    return METADATA_PREFIX + name


def rate_input_names(site: str, model_format: ModelFormat = "onnx") -> tuple[str, str]:
    """Names of the inputs carrying ``site``'s flip rates, P(+1→−1) then P(−1→+1)."""
    separator = _SEPARATORS[model_format]
    return tuple(f"{RATE_PREFIX}{direction}{separator}{site}" for direction in DIRECTIONS)


def rate_map_dim(site: str) -> str:
    """The symbolic length of ``site``'s rate inputs in a model injected with rate maps: 1, or
    the number of elements of one image's activation (one rate per address)."""
    return f"addresses.{site}"


def parse_rate_input(name: str) -> tuple[str, Direction] | None:
    """``(site, "pos" | "neg")`` of a rate input in either spelling; ``None`` for any other."""
    for direction in DIRECTIONS:
        for separator in _SEPARATORS.values():
            prefix = f"{RATE_PREFIX}{direction}{separator}"
            if name.startswith(prefix) and len(name) > len(prefix):
                return name[len(prefix) :], direction
    return None


def is_control_input(name: str) -> bool:
    """Whether an input is the flip seed or a rate input (not data)."""
    return name == SEED_INPUT or parse_rate_input(name) is not None


BITFLIP_DOMAIN = "xnorfault"  # the ONNX domain of xnorfault's model-local functions
BITFLIP_OP = "BitFlip"  # one node per binary site: BitFlip<site_index>(x, p_pos, p_neg, flip_seed)
BITFLIP_PREVIOUS_OP = "BitFlipPrevious"  # the same under the write model "previous"
BITFLIP_OPS = (BITFLIP_OP, BITFLIP_PREVIOUS_OP)


def flipped_name(site: str) -> str:
    """The tensor a site's consumers read after injection: the site with its flips."""
    return f"{site}.flipped"
