"""Model registry, architectures and binarization conventions."""

import pytest
import torch

from xnorfault.errors import XnorfaultError
from xnorfault.models import create_model, model_info, register_model, registered_models
from xnorfault.models.alexnet import AlexNet
from xnorfault.models.layers import BinaryActivation, BinaryConv2d
from xnorfault.models.lenet4 import LeNet4
from xnorfault.models.nin import NiN


@pytest.mark.parametrize(
    "name, channels, size, classes",
    [("lenet4", 1, 28, 10), ("lenet4", 3, 32, 7), ("nin", 3, 32, 100), ("alexnet", 3, 224, 2)],
)
def test_architectures_follow_the_data(name, channels, size, classes):
    model = create_model(name, num_classes=classes, in_channels=channels, input_size=size).eval()
    with torch.no_grad():
        out = model(torch.randn(2, channels, size, size))
    assert out.shape == (2, classes)
    assert list(model.activation_sites) == model_info(name).activation_sites
    assert len(model.weight_sites) == len(model.activation_sites)
    assert model.config()["name"] == name


def test_each_name_builds_the_class_that_registered_it():
    """No fall-through: each name builds its own class with its registered nominal size; an
    unknown name and a name registered twice are errors."""
    assert list(registered_models()) == ["lenet4", "nin", "alexnet"]
    for name, cls in (("lenet4", LeNet4), ("nin", NiN), ("alexnet", AlexNet)):
        model = create_model(name)
        info = model_info(name)
        assert type(model) is cls and model.registry_name == name
        assert (model.input_size, model.in_channels) == (
            info.nominal_input_size,
            info.nominal_channels,
        )
    with pytest.raises(XnorfaultError, match="unknown model 'resnet18': use one of"):
        create_model("resnet18")
    with pytest.raises(ValueError, match="registered twice"):
        register_model(model_info("lenet4"))(type("Again", (), {}))


def test_first_and_last_layers_stay_full_precision():
    for name in registered_models():
        model = create_model(name, input_size=None)
        convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d | torch.nn.Linear)]
        assert not isinstance(convs[0], BinaryConv2d)
        assert type(convs[-1]) in (torch.nn.Linear, torch.nn.Conv2d)


def test_sign_of_zero_is_plus_one_and_outputs_are_binary():
    site = BinaryActivation("act1").eval()
    out = site(torch.tensor([-3.0, -1e-9, 0.0, 1e-9, 3.0]))
    assert out.tolist() == [-1.0, -1.0, 1.0, 1.0, 1.0]


def test_xnor_weights_use_per_filter_mean_absolute_scale():
    conv = BinaryConv2d("weight1", 4, 3, 3)
    weight = conv.weight.detach()
    alpha = weight.abs().mean(dim=(1, 2, 3), keepdim=True)
    assert torch.allclose(conv.quant_weight().value, torch.where(weight >= 0, alpha, -alpha))
    unit = BinaryConv2d("weight1", 4, 3, 3, weight_scaling="tensor")
    assert set(unit.quant_weight().value.unique().tolist()) <= {-1.0, 1.0}


def test_unknown_model_and_too_small_input():
    with pytest.raises(XnorfaultError, match="unknown model 'vgg'.*lenet4, nin, alexnet"):
        create_model("vgg")
    with pytest.raises(XnorfaultError, match="cannot take 8×8"):
        create_model("lenet4", input_size=8)
    with pytest.raises(XnorfaultError, match="at least 2 classes"):
        create_model("lenet4", num_classes=1)
