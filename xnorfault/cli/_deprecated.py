"""Old option spellings, kept for one release: each is rewritten to its new name before the
command line is parsed, with a one-line note on stderr.

The new names give each spelling one meaning across the commands: ``--mram-device`` is the
MRAM device everywhere (``-d``/``--device`` were its aliases, while ``train --device`` was the
torch device, now ``--torch-device``); ``--output-name`` is the graph output holding the logits
(``evaluate``/``inspect`` called it ``--output``, which is a file everywhere else);
``--limit-test`` is the number of test images (as in ``train``); ``--latency-batches`` are the
batch sizes timed (``--batch`` beside ``--batch-size``); ``mram retention --age`` is a storage
time (as in ``evaluate --age``).
"""

from __future__ import annotations

import sys

REMOVED_IN = "0.3"

_MRAM_DEVICE = {"--device": "--mram-device", "-d": "--mram-device"}

# per command path: old spelling → new
DEPRECATED_SPELLINGS: dict[tuple[str, ...], dict[str, str]] = {
    ("train",): {"--device": "--torch-device"},
    ("inspect",): {"--output": "--output-name"},
    ("inject",): dict(_MRAM_DEVICE),
    ("evaluate",): {
        **_MRAM_DEVICE,
        "--output": "--output-name",
        "--limit": "--limit-test",
        "--batch": "--latency-batches",
    },
    ("optimize",): {**_MRAM_DEVICE, "--limit": "--limit-test"},
    ("deploy",): dict(_MRAM_DEVICE),
    **{("mram", name): dict(_MRAM_DEVICE) for name in ("table", "curve", "wer", "solve", "fit")},
    ("mram", "retention"): {**_MRAM_DEVICE, "--time": "--age"},
}


def _command_path(argv: list[str]) -> tuple[tuple[str, ...], int]:
    """The command path the arguments name (``("mram", "wer")``) and where its options start."""
    path: list[str] = []
    for index, token in enumerate(argv):
        if token.startswith("-"):
            continue
        candidate = (*path, token)
        if candidate in DEPRECATED_SPELLINGS or any(
            key[: len(candidate)] == candidate for key in DEPRECATED_SPELLINGS
        ):
            path.append(token)
            if tuple(path) in DEPRECATED_SPELLINGS:
                return tuple(path), index + 1
            continue
        break
    return tuple(path), len(argv)


def rewrite_deprecated(argv: list[str]) -> list[str]:
    """``argv`` with the old spellings of its command's options in their new names (also as
    ``--old=value`` and ``-dVALUE``), a note on stderr for each old spelling used; tokens after
    ``--`` are values and stay."""
    path, start = _command_path(argv)
    spellings = DEPRECATED_SPELLINGS.get(path)
    if not spellings:
        return argv
    rewritten, noted = list(argv[:start]), set()
    tokens = iter(argv[start:])
    for token in tokens:
        if token == "--":
            rewritten += [token, *tokens]
            break
        old, new = _match(token, spellings)
        if old is None:
            rewritten.append(token)
            continue
        if old not in noted:
            noted.add(old)
            print(
                f"note: '{' '.join(path)} {old}' is now {new}; {old} goes in xnorfault {REMOVED_IN}",
                file=sys.stderr,
            )
        if token.startswith("--") or token == old:
            rewritten.append(new + token[len(old) :])
        else:
            rewritten.append(f"{new}={token[len(old) :]}")
    return rewritten


def _match(token: str, spellings: dict[str, str]) -> tuple[str | None, str | None]:
    for old, new in spellings.items():
        if token == old or (old.startswith("--") and token.startswith(old + "=")):
            return old, new
        if not old.startswith("--") and token.startswith(old) and len(token) > len(old):
            return old, new  # -dpaper
    return None, None
