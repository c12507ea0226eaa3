"""The report step of ``xnorfault optimize``: the answer (:class:`OptimizationResult`, its
``--json`` object, figure and tuned model) and the operating-points TOML it writes and
``deploy`` reads back (validated: an untrusted file).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from xnorfault.errors import XnorfaultError
from xnorfault.faults import FlipRates, WriteModel
from xnorfault.graph.rewrite import inject_flips, load_model, save_model
from xnorfault.io import check_figure_output
from xnorfault.plots import plot_pareto
from xnorfault.units import parse_duration, parse_voltage

OPERATING_POINTS_FORMAT = "xnorfault-operating-points/1"


@dataclass
class OptimizationResult:
    """What :func:`optimize` found; :meth:`to_dict` is the ``--json`` object."""

    max_drop: float
    sites: list[dict]
    energy_per_inference: float
    shared: dict
    conventional: dict | None
    verification: dict
    evaluations: int
    images_inferred: int
    per_site_kept: bool
    device: object
    write: WriteModel
    search: dict = field(default_factory=dict)
    pareto: dict = field(default_factory=dict)
    model_path: str | None = None
    chips: dict | None = None

    def to_dict(self) -> dict:
        data = {
            "max_drop": self.max_drop,
            "sites": self.sites,
            "energy_per_inference": self.energy_per_inference,
            "shared": self.shared,
            "conventional": self.conventional,
            "verification": self.verification,
            "evaluations": self.evaluations,
            "images_inferred": self.images_inferred,
            "per_site_kept": self.per_site_kept,
            "device": self.device.to_dict(),
            "write_model": self.write.to_dict(),
            "search": self.search,
            "pareto": self.pareto,
            "model": self.model_path,
            "chips": self.chips,
        }
        # null where the device has no conventional point in range
        data["energy_vs_conventional"] = (
            self.energy_per_inference / self.conventional["energy_per_inference"]
            if self.conventional
            else None
        )
        data["energy_vs_shared"] = self.energy_per_inference / self.shared["energy_per_inference"]
        return data

    @property
    def rates(self) -> dict[str, FlipRates]:
        return {s["site"]: FlipRates(s["wer_ap_to_p"], s["wer_p_to_ap"]) for s in self.sites}

    def operating_points(self) -> dict:
        """Per site: voltage and pulse (what :func:`write_operating_points` writes)."""
        return {s["site"]: {"voltage": s["voltage"], "pulse": s["pulse"]} for s in self.sites}

    def plot(self, path=None):
        """Energy per inference (J) against the predicted drop (per-site and shared fronts, the
        answer, the conventional point), as ``optimize --plot`` draws it: the matplotlib figure,
        saved to ``path`` when given."""
        if path is not None:
            path = check_figure_output(Path(path), "plot")
        return plot_pareto(self.to_dict(), path)

    def save_model(self, source, path) -> Path:
        """Write ``source`` (the model optimised) injected with each site's chosen rates, its
        metadata recording the operating points."""
        injected = inject_flips(
            load_model(source),
            self.rates,
            source={
                "optimize": {
                    "device": self.device.name,
                    "max_drop": self.max_drop,
                    "operating_points": self.operating_points(),
                }
            },
            write=self.write,
        )
        return save_model(injected, Path(path))


def operating_points_toml(result: OptimizationResult) -> str:
    """A TOML file of per-site operating points (``xnorfault deploy --operating-points``)."""
    lines = [
        "# Per-site MRAM write operating points found by 'xnorfault optimize'.",
        f"# Budget: accuracy drop <= {result.max_drop:g}; held-out upper "
        f"{result.verification['confidence']:.3g} bound on {result.verification['images']} images: "
        f"{result.verification['drop_upper']:.4f}.",
        f'format = "{OPERATING_POINTS_FORMAT}"',
        f'device = "{result.device.name}"',
        f'write_model = "{result.write.model}"',
        f'initial_state = "{result.write.initial_state}"',
        "",
    ]
    for site in result.sites:
        name = site["site"].replace("\\", "\\\\").replace('"', '\\"')
        lines += [
            f'[sites."{name}"]',
            f'voltage = "{site["voltage"] * 1e3:.1f}mV"',
            f'pulse = "{site["pulse"] * 1e9:.4g}ns"',
            "",
        ]
    return "\n".join(lines)


def read_operating_points(path) -> dict[str, tuple[float, float]]:
    """Per-site (voltage, pulse) of an operating-points TOML, validated (an untrusted file:
    parsed by tomllib, nothing executed; every value checked)."""
    path = Path(path)
    if not path.is_file():
        raise XnorfaultError(f"operating points {path} not found")
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise XnorfaultError(f"{path} is not valid TOML ({error})") from None
    if document.get("format") != OPERATING_POINTS_FORMAT:
        raise XnorfaultError(
            f'{path}: not an operating-points file (format = "{OPERATING_POINTS_FORMAT}" '
            "expected; write one with 'xnorfault optimize --operating-points')"
        )
    sites = document.get("sites")
    if not isinstance(sites, dict) or not sites:
        raise XnorfaultError(f"{path}: no [sites.NAME] tables with voltage and pulse")
    points = {}
    for name, entry in sites.items():
        if not isinstance(entry, dict) or set(entry) != {"voltage", "pulse"}:
            raise XnorfaultError(f"{path}: [sites.{name}] takes exactly voltage and pulse")
        try:
            points[name] = (parse_voltage(entry["voltage"]), parse_duration(entry["pulse"]))
        except (TypeError, ValueError, XnorfaultError) as error:
            raise XnorfaultError(f"{path}: [sites.{name}]: {error}") from None
    return points


__all__ = [
    "OPERATING_POINTS_FORMAT",
    "OptimizationResult",
    "operating_points_toml",
    "read_operating_points",
]
