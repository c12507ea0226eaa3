"""How ``--help`` shows the options: grouped into panels where a command has many, flags
without a value placeholder."""

from __future__ import annotations

FAULTS = "Faults"
STATISTICS = "Statistics"
MEMORY = "Chips and weight memory"
TRAINING = "Training"
RUNTIME = "Runtime and latency"
CAMPAIGN = "Campaign (processes, Ray, shards)"
OUTPUT = "Output"

# option spelling → panel, for the commands with many options
HELP_PANELS: dict[str, str] = {
    **dict.fromkeys(
        [
            "--ber",
            "--p-flip-pos",
            "--p-flip-neg",
            "--voltage",
            "--pulse",
            "--mram-device",
            "--write-model",
            "--initial-state",
            "--voltage-schedule",
            "--schedule",
            "--layer-ber",
            "--weight-ber",
            "--test-ber",
            "--operating-points",
        ],
        FAULTS,
    ),
    **dict.fromkeys(
        [
            "--repeats",
            "--seed",
            "--limit-test",
            "--max-drop",
            "--per-layer",
            "--target-ci",
            "--max-repeats",
            "--confidence",
            "--verify-repeats",
        ],
        STATISTICS,
    ),
    **dict.fromkeys(
        [
            "--chips",
            "--chip-seed",
            "--age",
            "--temperature",
            "--weight-voltage",
            "--weight-pulse",
            "--weight-erased",
            "--read-voltage",
            "--read-pulse",
            "--read-direction",
            "--reads-per-inference",
            "--inferences",
        ],
        MEMORY,
    ),
    **dict.fromkeys(
        [
            "--model",
            "--epochs",
            "--lr",
            "--weight-decay",
            "--milestones",
            "--gradient",
            "--weight-scaling",
            "--input-size",
            "--limit-train",
            "--extra",
            "--classes",
            "--subset-seed",
        ],
        TRAINING,
    ),
    **dict.fromkeys(
        [
            "--backend",
            "--threads",
            "--lce-benchmark-binary",
            "--lce-model",
            "--target",
            "--latency-batches",
            "--latency-iterations",
            "--output-name",
            "--layout",
            "--batch-size",
            "--torch-device",
            "--sync-bn",
            "--lce",
            "--wheel",
        ],
        RUNTIME,
    ),
    **dict.fromkeys(["--workers", "--executor", "--address", "--shard", "--merge"], CAMPAIGN),
    **dict.fromkeys(
        ["--out", "--output", "--csv", "--plot", "--log", "--json", "--force", "--testset"], OUTPUT
    ),
}
# a command with at most this many options keeps them in one panel
PANELLED_FROM = 13


def polish_help(command) -> None:
    """Set the help of ``command`` and its subcommands: options in the panels of
    :data:`HELP_PANELS` where a command has at least :data:`PANELLED_FROM` of them, and flags
    shown as ``--json``, not ``--json <bool>`` (a flag takes no value: ``--json true`` is
    refused, so none is shown)."""
    for sub in getattr(command, "commands", {}).values():
        polish_help(sub)
    options = [p for p in command.params if getattr(p, "param_type_name", "") == "option"]
    panelled = len(options) >= PANELLED_FROM
    for option in options:
        if getattr(option, "is_flag", False) and option.metavar is None:
            option.metavar = ""
        if panelled and getattr(option, "rich_help_panel", None) is None:
            panel = next((HELP_PANELS[o] for o in option.opts if o in HELP_PANELS), None)
            option.rich_help_panel = panel
