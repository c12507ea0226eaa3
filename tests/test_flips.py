"""Bit flips during training: rates per site and polarity, eval mode, gradient conventions."""

import math

import numpy as np
import pytest
import torch
from binomial_bounds import assert_rate

from xnorfault.faults import FaultSpec, FlipRates
from xnorfault.models import create_model
from xnorfault.models.flips import BitFlip, apply_flips, flip_indices
from xnorfault.training.faults import configure_faults


@pytest.mark.parametrize("p", [0.001, 0.01, 0.05, 0.3, 0.5])
def test_symmetric_flip_rate_sparse_and_dense(p):
    generator = torch.Generator().manual_seed(7)
    values = torch.where(torch.rand(64, 32, 16, generator=generator) < 0.5, 1.0, -1.0)
    flips = sum(flip_indices(values, p, p, generator).numel() for _ in range(20))
    assert_rate(flips, 20 * values.numel(), p)


@pytest.mark.parametrize("p_pos, p_neg", [(0.02, 0.005), (0.0, 0.04), (0.3, 0.1)])
def test_flip_rates_per_polarity(p_pos, p_neg):
    generator = torch.Generator().manual_seed(3)
    values = torch.where(torch.rand(200_000, generator=generator) < 0.3, 1.0, -1.0)
    pos_flips = neg_flips = 0
    for _ in range(10):
        chosen = values[flip_indices(values, p_pos, p_neg, generator)]
        pos_flips += int((chosen > 0).sum())
        neg_flips += int((chosen < 0).sum())
    assert_rate(pos_flips, 10 * int((values > 0).sum()), p_pos)
    assert_rate(neg_flips, 10 * int((values < 0).sum()), p_neg)


def test_flips_are_independent_of_position():
    # Each element's flip count over many draws is Binomial(draws, p): compare the spread of
    # the per-element counts with the binomial variance (a chi-square dispersion test).
    generator = torch.Generator().manual_seed(11)
    values = torch.ones(5000)
    draws, p = 400, 0.02
    counts = torch.zeros(5000)
    for _ in range(draws):
        counts[flip_indices(values, p, p, generator)] += 1
    dispersion = float(((counts - draws * p) ** 2).sum() / (draws * p * (1 - p)))
    # chi-square with 5000 degrees of freedom: 99.9 % of the mass lies within ±3.3 sd (= ±330)
    assert abs(dispersion - 5000) < 330


@pytest.fixture
def lenet():
    torch.manual_seed(0)
    return create_model("lenet4", num_classes=10, in_channels=1, input_size=28)


def capture_sites(model):
    """Each site's tensor before and after its flips (the flips overwrite their input, so the
    input is copied before the forward)."""
    seen = {}

    def before(module, inputs):
        seen[module.site] = (inputs[0].detach().clone(), None)

    def hook(module, inputs, output):
        seen[module.site] = (seen[module.site][0], output.detach().clone())

    for module in model.activation_sites.values():
        module.register_forward_pre_hook(before)
        module.register_forward_hook(hook)
    return seen


def test_model_sites_flip_at_their_own_rates(lenet):
    spec = FaultSpec(
        activations=FlipRates.symmetric(0.02),
        layers={"act2": FlipRates(0.1, 0.01)},
    )
    configure_faults(lenet, spec, epoch=0, generator=torch.Generator().manual_seed(5))
    seen = capture_sites(lenet)
    lenet.train()
    totals = {"act1": [0, 0, 0, 0], "act2": [0, 0, 0, 0]}
    for _ in range(6):
        lenet(torch.randn(64, 1, 28, 28))
        for site, (before, after) in seen.items():
            flipped = before != after
            assert torch.all(after[flipped] == -before[flipped])
            totals[site][0] += int((flipped & (before > 0)).sum())
            totals[site][1] += int((before > 0).sum())
            totals[site][2] += int((flipped & (before < 0)).sum())
            totals[site][3] += int((before < 0).sum())
    assert_rate(totals["act1"][0], totals["act1"][1], 0.02)
    assert_rate(totals["act1"][2], totals["act1"][3], 0.02)
    assert_rate(totals["act2"][0], totals["act2"][1], 0.1)
    assert_rate(totals["act2"][2], totals["act2"][3], 0.01)


def test_no_flips_in_eval_unless_asked(lenet):
    configure_faults(
        lenet, FaultSpec.from_ber(0.2), epoch=0, generator=torch.Generator().manual_seed(1)
    )
    seen = capture_sites(lenet)
    lenet.eval()
    lenet(torch.randn(16, 1, 28, 28))
    assert all(torch.equal(before, after) for before, after in seen.values())
    configure_faults(
        lenet, FaultSpec.from_ber(0.2), None, torch.Generator().manual_seed(1), flip_in_eval=True
    )
    lenet(torch.randn(16, 1, 28, 28))
    assert all(not torch.equal(before, after) for before, after in seen.values())


def test_epoch_schedule_and_layer_overrides():
    spec = FaultSpec.ber_ramp(0.0, 0.08, epochs=5, layers={"act1": FlipRates.symmetric(0.0)})
    assert spec.activation_rates("act2", 0).pos_to_neg == 0.0
    assert spec.activation_rates("act2", 2).pos_to_neg == pytest.approx(0.04)
    assert spec.activation_rates("act2", 9).pos_to_neg == pytest.approx(0.08)
    assert spec.activation_rates("act1", 4).pos_to_neg == 0.0
    assert FaultSpec.from_json(spec.to_json()) == spec


def test_voltage_schedule_maps_through_the_mram_model():
    from xnorfault.mram import load_device

    device = load_device("asymmetric")
    spec = FaultSpec.voltage_schedule(device, [0.8, 0.6], 10e-9)
    rates = spec.activation_rates("act1", 1)
    assert rates.pos_to_neg == pytest.approx(device.wer(0.6, 10e-9, "ap_to_p"))
    assert rates.neg_to_pos == pytest.approx(device.wer(0.6, 10e-9, "p_to_ap"))
    assert spec.activation_rates("act1", 0).neg_to_pos < rates.neg_to_pos


def test_unknown_layer_override_is_a_clear_error(lenet):
    from xnorfault.errors import XnorfaultError

    spec = FaultSpec(layers={"act9": FlipRates.symmetric(0.1)})
    with pytest.raises(XnorfaultError, match="unknown binary site.*act9.*act1, act2"):
        configure_faults(lenet, spec, 0, None)


def test_gradient_conventions_on_the_flip():
    x = torch.tensor([1.0, -1.0, 1.0, -1.0], requires_grad=True)
    indices = torch.tensor([1, 2])
    upstream = torch.tensor([0.5, 2.0, -3.0, 4.0])
    apply_flips(x, indices, "straight_through").backward(upstream)
    assert torch.equal(x.grad, upstream)
    x.grad = None
    y = apply_flips(x, indices, "flipped")
    assert torch.equal(y.detach(), torch.tensor([1.0, 1.0, -1.0, -1.0]))
    y.backward(upstream)
    assert torch.equal(x.grad, torch.tensor([0.5, -2.0, 3.0, 4.0]))


def test_a_repeated_position_flips_once_and_scratch_factors_stay_per_call():
    x = torch.tensor([1.0, -1.0, 1.0, -1.0, 1.0], requires_grad=True)
    scratch = torch.empty(8)
    first = apply_flips(x, torch.tensor([3, 1, 3, 3]), "flipped", scratch)
    assert torch.equal(first.detach(), torch.tensor([1.0, 1.0, 1.0, 1.0, 1.0]))
    # a second call refills the scratch before the first call's backward (two forwards, one
    # backward): each backward still negates its own positions
    second = apply_flips(x, torch.tensor([0, 0]), "flipped", scratch)
    (first.sum() + 2 * second.sum()).backward()
    assert torch.equal(x.grad, torch.tensor([-2.0 + 1.0, -1.0 + 2.0, 3.0, -1.0 + 2.0, 3.0]))


@pytest.mark.parametrize("gradient", ["straight_through", "flipped"])
@pytest.mark.parametrize("in_place", [False, True])
def test_few_and_many_positions_flip_alike(gradient, in_place):
    # few positions are negated where they lie, many through ±1 factors: the same values and
    # gradients bit for bit, a repeated position flipping once either way
    from xnorfault.models.flips import SPARSE_SHARE

    generator = torch.Generator().manual_seed(5)
    shape = (8, 4, 16, 16)
    count = math.prod(shape)
    few = torch.randint(0, count, (int(count * SPARSE_SHARE) - 40,), generator=generator)
    few = torch.cat([few, few[:40]])  # repeats
    assert few.numel() <= count * SPARSE_SHARE
    upstream = torch.randn(shape, generator=generator)
    results = []
    for forced_share in (SPARSE_SHARE, 0.0):  # 0: the factor path for the same positions
        x = torch.randn(shape, generator=generator.manual_seed(6)).requires_grad_()
        binary = torch.where(x >= 0, 1.0, -1.0) * x.abs().mean()  # a non-leaf, like a binarizer's
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr("xnorfault.models.flips.SPARSE_SHARE", forced_share)
            patch.setattr("xnorfault.models.flips.SPARSE_MIN_ELEMENTS", 0)
            y = apply_flips(binary, few, gradient, torch.empty(count), in_place)
        y.backward(upstream)
        results.append((y.detach().clone(), x.grad.clone()))
        assert (y is binary) == in_place
    (sparse, sparse_grad), (dense, dense_grad) = results
    assert torch.equal(sparse, dense)
    assert torch.equal(sparse_grad, dense_grad)
    flipped = torch.zeros(count, dtype=torch.bool)
    flipped[few] = True
    reference = torch.where(x.detach() >= 0, 1.0, -1.0).reshape(-1)
    assert torch.equal(sparse.reshape(-1).sign() != reference, flipped)


@pytest.mark.parametrize("gradient", ["straight_through", "flipped"])
def test_gradient_through_binarizer_and_flip_matches_finite_reasoning(gradient):
    # d/dx of sum(w * flip(sign(x))): the clipped straight-through estimator gives w on |x| <= 1
    # and 0 elsewhere; the 'flipped' convention negates it where a flip happened.
    from xnorfault.models.layers import BinaryActivation

    site = BinaryActivation("act1")
    site.flip.pos_to_neg = site.flip.neg_to_pos = 0.5
    site.flip.gradient = gradient
    site.flip.generator = torch.Generator().manual_seed(2)
    site.train()
    x = torch.linspace(-2, 2, 401, requires_grad=True)
    w = torch.randn(401, generator=torch.Generator().manual_seed(3))
    out = site(x)
    (w * out).sum().backward()
    binary = torch.where(x.detach() >= 0, 1.0, -1.0)
    flipped = out.detach() != binary
    assert 0.3 < flipped.float().mean() < 0.7
    inside = (x.detach().abs() <= 1).float()
    sign = torch.where(flipped, -1.0, 1.0) if gradient == "flipped" else torch.ones(401)
    assert torch.allclose(x.grad, w * inside * sign)


def test_weight_flips_change_binary_weights_only_in_training(lenet):
    spec = FaultSpec(weights=FlipRates.symmetric(0.05))
    configure_faults(lenet, spec, 0, torch.Generator().manual_seed(4))
    x = torch.randn(8, 1, 28, 28)
    lenet.eval()
    clean = lenet(x)
    assert torch.equal(clean, lenet(x))
    stored = lenet.classifier[0][2].weight.detach().clone()
    lenet.train()
    for module in lenet.modules():  # compare in train mode with identical batch statistics
        if isinstance(module, torch.nn.BatchNorm1d | torch.nn.BatchNorm2d):
            module.momentum = 0.0
    faulty = lenet(x)
    configure_faults(lenet, FaultSpec(), 0, None)
    assert not torch.allclose(faulty, lenet(x))
    assert torch.equal(stored, lenet.classifier[0][2].weight.detach())


def test_sparse_draw_matches_dense_distribution_of_counts():
    # the number of flips in a tensor is Binomial(n, p) for both constructions
    generator = torch.Generator().manual_seed(9)
    values = torch.ones(2000)
    counts = np.array([flip_indices(values, 0.01, 0.01, generator).numel() for _ in range(2000)])
    assert counts.mean() == pytest.approx(20, abs=0.5)
    assert counts.var() == pytest.approx(2000 * 0.01 * 0.99, rel=0.12)


def test_bitflip_module_reports_its_rates():
    module = BitFlip("act3")
    assert not module.active()
    module.pos_to_neg = 0.1
    assert module.active() and "act3" in repr(module)
