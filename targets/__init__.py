"""Deployment targets (importable as ``xnorfault.targets``): Raspberry Pi 4 and 5, and the host.

A target profile (TOML, ``targets/profiles/``) says what a bundle is built for and what an
evaluation on it runs with: architecture and CPU, cores, runtime threads, latency batch sizes
and accuracy batch size, and the Python and wheel platforms of its requirements. ``host`` is
the machine xnorfault runs on, read at run time. :func:`machine_description` records what an
evaluation actually ran on (architecture, CPU, cores), which may differ from the profile — an
emulated aarch64 says so.

Imports the standard library only.
"""

from __future__ import annotations

import os
import platform
import tomllib
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path

from xnorfault.errors import XnorfaultError

ALIASES = {"raspberry-pi": "raspberry-pi-4"}
HOST = "host"

# ARM's main-ID "CPU part" numbers of the cores a Raspberry Pi and its cousins carry.
ARM_PARTS = {
    "0xd03": "Cortex-A53",
    "0xd04": "Cortex-A35",
    "0xd05": "Cortex-A55",
    "0xd07": "Cortex-A57",
    "0xd08": "Cortex-A72",
    "0xd09": "Cortex-A73",
    "0xd0a": "Cortex-A75",
    "0xd0b": "Cortex-A76",
    "0xd0c": "Neoverse-N1",
    "0xd40": "Neoverse-V1",
    "0xd4f": "Neoverse-V2",
}


@dataclass(frozen=True)
class Target:
    """A deployment target profile."""

    name: str
    description: str
    architecture: str
    cpu: str
    cores: int
    threads: int
    latency_batches: list[int] = field(default_factory=lambda: [1])
    batch_size: int = 256
    os: str = ""
    python: str = ""
    wheel_platforms: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def available_targets() -> list[str]:
    """Names of the built-in profiles, then ``host``."""
    folder = resources.files("xnorfault.targets") / "profiles"
    names = sorted(
        entry.name.removesuffix(".toml")
        for entry in folder.iterdir()
        if entry.name.endswith(".toml")
    )
    return names + [HOST]


def _from_document(document: dict, source: str) -> Target:
    known = set(Target.__dataclass_fields__)
    unknown = sorted(set(document) - known)
    if unknown:
        raise XnorfaultError(
            f"target {source}: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})"
        )
    missing = [
        key
        for key in ("name", "description", "architecture", "cpu", "cores", "threads")
        if key not in document
    ]
    if missing:
        raise XnorfaultError(f"target {source}: missing key(s) {', '.join(missing)}")
    for key in ("cores", "threads", "batch_size"):
        if key in document and (not isinstance(document[key], int) or document[key] < 1):
            raise XnorfaultError(f"target {source}: {key} must be a positive integer")
    batches = document.get("latency_batches", [1])
    if not isinstance(batches, list) or not all(isinstance(b, int) and b > 0 for b in batches):
        raise XnorfaultError(
            f"target {source}: latency_batches must be a list of positive integers"
        )
    return Target(**document)


def host_target() -> Target:
    """The machine xnorfault runs on, as a target."""
    machine = machine_description()
    cores = machine["cores"]
    return Target(
        name=HOST,
        description=f"this machine ({machine['cpu']})",
        architecture=machine["architecture"],
        cpu=machine["cpu"],
        cores=cores,
        threads=cores,
        latency_batches=[1, 256],
        batch_size=256,
        os=machine["system"],
        python=platform.python_version(),
    )


def profile_text(name_or_path: str | Path) -> str:
    """The TOML of a profile by name (aliases included) or file path — what a bundle carries.
    ``host`` has none: it is read from the machine."""
    text = ALIASES.get(str(name_or_path), str(name_or_path))
    if text in available_targets() and text != HOST:
        return (resources.files("xnorfault.targets") / "profiles" / f"{text}.toml").read_text(
            encoding="utf-8"
        )
    path = Path(text)
    if path.suffix == ".toml" and path.is_file():
        try:
            return path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise XnorfaultError(
                f"target file {path} is not UTF-8 text: save it as UTF-8 TOML"
            ) from None
        except OSError as error:
            raise XnorfaultError(f"cannot read target file {path}: {error.strerror}") from None
    raise XnorfaultError(
        f"unknown target {text!r}: use one of {', '.join(available_targets())}, raspberry-pi, "
        "or a .toml profile"
    )


def load_target(name_or_path: str | Path) -> Target:
    """A target by name (``raspberry-pi-4``, ``raspberry-pi-5``, ``raspberry-pi`` = 4, ``host``)
    or from a TOML file with the same keys."""
    text = ALIASES.get(str(name_or_path), str(name_or_path))
    if text == HOST:
        return host_target()
    try:
        document = tomllib.loads(profile_text(text))
    except tomllib.TOMLDecodeError as error:
        raise XnorfaultError(f"target file {text} is not valid TOML ({error})") from None
    return _from_document(document, text)


def _cpuinfo() -> dict[str, str]:
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return {}
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if value and key.strip() not in fields:
            fields[key.strip()] = value.strip()
    return fields


def machine_description() -> dict:
    """What this process runs on: architecture, CPU, cores, board model, Python, system."""
    info = _cpuinfo()
    cpu = info.get("model name") or ARM_PARTS.get(info.get("CPU part", "").lower(), "")
    cpu = cpu or platform.processor() or "unknown CPU"
    description = {
        "architecture": platform.machine(),
        "cpu": cpu,
        "cores": os.cpu_count() or 1,
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
    }
    if "Model" in info:
        description["board"] = info["Model"]
    return description
