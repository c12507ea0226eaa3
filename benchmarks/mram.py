"""Speed of the MRAM model: exact inverse solves and the closed form.

Run: python benchmarks/mram.py   (or: make benchmarks)

Prints the median time of an exact ``voltage_for_wer`` and ``pulse_for_wer`` solve (each on a
fresh voltage, so nothing is cached), of one exact WER evaluation, and of a 10^6-point
closed-form evaluation, plus the ratio exact-solve / closed-form-per-point.
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from xnorfault.mram import load_device, switching


def median_time(function, repeats: int) -> float:
    times = []
    for index in range(repeats):
        start = time.perf_counter()
        function(index)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    device = load_device("paper")
    device.voltage_for_wer(1e-6, 10e-9)  # warm-up: quadrature nodes, initial state

    targets = np.geomspace(1e-9, 0.1, 24)
    solve_voltage = median_time(lambda i: device.voltage_for_wer(targets[i], 10e-9), len(targets))
    voltages = np.linspace(0.62, 0.95, 24)
    solve_pulse = median_time(lambda i: device.pulse_for_wer(1e-6, voltages[i]), len(voltages))
    fresh = np.linspace(0.5, 1.0, 24)
    switching._propagator.cache_clear()
    one_wer = median_time(lambda i: device.wer(fresh[i], 10e-9), len(fresh))

    rng = np.random.default_rng(0)
    v = rng.uniform(1.2, 4.0, 1_000_000)
    t = rng.uniform(1.0, 10.0, 1_000_000)
    closed = median_time(lambda i: switching.wer_closed_form(v, t, 40.0), 5)

    print(
        "MRAM model, paper device (Δ=40), exact = Legendre/Fokker–Planck with "
        f"{switching.default_terms(40.0, 2.8)} terms"
    )
    print(f"  exact voltage_for_wer solve      {solve_voltage * 1e3:8.1f} ms  (aim < 50 ms)")
    print(f"  exact pulse_for_wer solve        {solve_pulse * 1e3:8.1f} ms")
    print(f"  exact wer, one new voltage       {one_wer * 1e3:8.1f} ms")
    print(
        f"  closed form, 10^6 points         {closed * 1e3:8.1f} ms  "
        f"({closed / 1e6 * 1e9:.0f} ns per point)"
    )
    print(f"  ratio exact solve / closed-form point: {solve_voltage / (closed / 1e6):.3g}")


if __name__ == "__main__":
    main()
