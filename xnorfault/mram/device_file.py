"""Device files: the TOML description of an MTJ device read (presets shipped with xnorfault,
or a user's file, validated key by key, with units) and written (``xnorfault mram fit -o``);
a device rebuilt from its JSON description. The physics is :mod:`xnorfault.mram.device`.
"""

from __future__ import annotations

import json
import tomllib
import warnings
from dataclasses import replace
from importlib import resources
from pathlib import Path

from xnorfault.errors import XnorfaultError
from xnorfault.mram.device import MTJ
from xnorfault.mram.measured import MeasuredWER
from xnorfault.units import parse_duration, parse_temperature, parse_voltage

# Without these a device file does not describe a junction's switching at all.
REQUIRED_DEVICE_KEYS = ("switching.delta", "switching.tau_d", "switching.vc0_p_to_ap")

# These may be left out: they keep the paper's values, and the device says which it defaulted.
# (vc0_ap_to_p defaults to vc0_p_to_ap, a symmetric junction; max_pulse bounds the solver only.)
DEFAULTED_DEVICE_KEYS = (
    "breakdown.vbd",
    "breakdown.gamma",
    "breakdown.time_at_vbd",
    "resistance.r_p",
    "resistance.r_ap",
    "retention.attempt_time",
)


class DeviceDefaultsWarning(UserWarning):
    """A device file left out parameters that were filled with the paper's values."""


def available_devices() -> list[str]:
    """Names of the device presets shipped with xnorfault."""
    folder = resources.files("xnorfault") / "devices"
    return sorted(
        entry.name.removesuffix(".toml")
        for entry in folder.iterdir()
        if entry.name.endswith(".toml")
    )


def preset_toml(name: str) -> str:
    """The TOML text of a shipped device preset."""
    return (resources.files("xnorfault") / "devices" / f"{name}.toml").read_text(encoding="utf-8")


def load_device(name_or_path: str | Path | None = None) -> MTJ:
    """A device by preset name (``"paper"``, the default) or from a TOML file path.

    >>> mtj = load_device("paper")
    >>> mtj.delta, mtj.vc0
    (40.0, 0.3)
    >>> round(mtj.voltage_for_wer(0.01, 10e-9), 3)  # volts for WER 1e-2 with 10 ns pulses
    0.529
    """
    if name_or_path is None:
        name_or_path = "paper"
    text = str(name_or_path)
    if text in available_devices():
        return device_from_document(tomllib.loads(preset_toml(text)), source=text)
    return read_device_file(text)


def read_device_file(path: str | Path) -> MTJ:
    """Read a device description (see ``xnorfault/devices/paper.toml`` for the format)."""
    from xnorfault.io import check_regular_file

    path = Path(path)
    check_regular_file(path, "device file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise XnorfaultError(
            f"device file {path} is not UTF-8 text: save it as UTF-8 TOML"
        ) from None
    except FileNotFoundError:
        raise XnorfaultError(
            f"device file {path} not found: give a TOML file or a preset "
            f"({', '.join(available_devices())})"
        ) from None
    except OSError as error:
        raise XnorfaultError(f"cannot read device file {path}: {error.strerror}") from None
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise XnorfaultError(f"device file {path} is not valid TOML: {error}") from None
    return device_from_document(document, source=str(path))


def device_from_document(document: dict, source: str) -> MTJ:
    """The device a parsed TOML document describes (``source``: its file, for messages and for
    the ``[measured]`` table beside it): unknown keys and sections, values without units and
    missing switching parameters are one-line errors; parameters left to the paper's values
    are named in a :class:`DeviceDefaultsWarning`."""
    schema = {
        "switching": {
            "delta": ("delta", float),
            "tau_d": ("tau_d", parse_duration),
            "vc0_p_to_ap": ("vc0", parse_voltage),
            "vc0_ap_to_p": ("vc0_ap_to_p", parse_voltage),
            "max_pulse": ("max_pulse", parse_duration),
        },
        "breakdown": {
            "vbd": ("vbd", parse_voltage),
            "gamma": ("breakdown_gamma", float),
            "time_at_vbd": ("breakdown_time_at_vbd", parse_duration),
        },
        "resistance": {"r_p": ("r_p", float), "r_ap": ("r_ap", float)},
        "retention": {
            "attempt_time": ("attempt_time", parse_duration),
            "reference_temperature": ("reference_temperature", parse_temperature),
        },
        "variation": {
            "sigma_delta": ("sigma_delta", float),
            "sigma_vc0": ("sigma_vc0", float),
            "distribution": ("variation", str),
            "correlation": ("variation_correlation", float),
        },
    }
    kwargs: dict = {}
    for key, value in document.items():
        if key in ("name", "description"):
            kwargs[key] = str(value)
        elif key == "measured":
            kwargs["measured"] = _measured_table(value, source)
        elif key == "weight_memory":
            if not isinstance(value, dict):
                raise XnorfaultError(f"{source}: [weight_memory] must be a table")
            kwargs["weight_memory"] = tuple(sorted(value.items()))
        elif key in schema:
            if not isinstance(value, dict):
                raise XnorfaultError(f"{source}: [{key}] must be a table")
            for field, raw in value.items():
                if field not in schema[key]:
                    known = ", ".join(schema[key])
                    raise XnorfaultError(f"{source}: unknown key {key}.{field} (known: {known})")
                attribute, parse = schema[key][field]
                try:
                    kwargs[attribute] = parse(raw)
                except (TypeError, ValueError) as error:
                    raise XnorfaultError(f"{source}: {key}.{field} = {raw!r}: {error}") from None
        else:
            raise XnorfaultError(
                f"{source}: unknown section or key {key!r} "
                "(known: name, description, switching, breakdown, resistance, retention, variation, "
                "weight_memory, measured)"
            )
    kwargs.setdefault("name", Path(source).stem)
    device = MTJ(**kwargs)
    given = {
        f"{section}.{key}"
        for section, table in document.items()
        if isinstance(table, dict)
        for key in table
    }
    missing = [key for key in REQUIRED_DEVICE_KEYS if key not in given]
    if missing:
        raise XnorfaultError(
            f"{source}: the device file lacks {', '.join(missing)}; the write-error model "
            "needs them (see 'xnorfault mram devices' and paper.toml for the format)"
        )
    defaulted = tuple(key for key in DEFAULTED_DEVICE_KEYS if key not in given)
    if defaulted:
        warnings.warn(
            f"device file {source} does not give {', '.join(defaulted)}: the paper's "
            "values are used for them",
            DeviceDefaultsWarning,
            stacklevel=3,
        )
        device = replace(device, defaulted=defaulted)
    return device


def _measured_table(section, source: str):
    """The ``[measured]`` section's WER table: a CSV named relative to the device file, inside
    its folder (a device file from elsewhere never reads other files)."""
    if not isinstance(section, dict) or set(section) != {"table"}:
        raise XnorfaultError(f'{source}: [measured] takes one key, table = "FILE.csv"')
    folder = Path(source).resolve().parent
    table = (folder / str(section["table"])).resolve()
    if not table.is_relative_to(folder):
        raise XnorfaultError(
            f"{source}: measured.table {section['table']!r} lies outside the device file's folder: "
            "put the table beside it"
        )
    return MeasuredWER.from_csv(table)


def device_toml(device) -> str:
    """A device description in the format of ``xnorfault/devices/paper.toml`` (its switching,
    breakdown, resistance and retention parameters; a TOML basic string is a JSON string)."""
    return "\n".join(
        [
            f"name = {json.dumps(device.name)}",
            f"description = {json.dumps(device.description)}",
            "",
            "[switching]",
            f"delta = {device.delta!r}",
            f'tau_d = "{device.tau_d!r}s"',
            f'vc0_p_to_ap = "{device.vc0!r}"',
            f'vc0_ap_to_p = "{(device.vc0_ap_to_p or device.vc0)!r}"',
            f'max_pulse = "{device.max_pulse!r}s"',
            "",
            "[breakdown]",
            f'vbd = "{device.vbd!r}"',
            f"gamma = {device.breakdown_gamma!r}",
            f'time_at_vbd = "{device.breakdown_time_at_vbd!r}s"',
            "",
            "[resistance]",
            f"r_p = {device.r_p!r}",
            f"r_ap = {device.r_ap!r}",
            "",
            "[retention]",
            f'attempt_time = "{device.attempt_time!r}s"',
            f"reference_temperature = {device.reference_temperature!r}",
            "",
        ]
    )


def device_from_dict(data: dict) -> MTJ:
    """The device of a :meth:`MTJ.to_dict` description (as a campaign folder records it): its
    parameters; a measured table cannot be rebuilt from a description (it names a file)."""
    fields = {k: v for k, v in data.items() if k not in ("measured", "weight_memory", "defaulted")}
    return MTJ(**fields)


__all__ = [
    "DeviceDefaultsWarning",
    "available_devices",
    "device_from_dict",
    "device_from_document",
    "device_toml",
    "load_device",
    "preset_toml",
    "read_device_file",
]
