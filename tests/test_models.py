import pytest
import torch

from core import models

SHAPES = [(1, 28), (3, 32)]


@pytest.mark.parametrize("name", models.list_models())
@pytest.mark.parametrize("channels,size", SHAPES)
def test_every_model_builds_and_trains_on_both_shapes(name, channels, size):
    torch.manual_seed(0)
    model = models.create_model(name, num_classes=10, in_channels=channels, image_size=size)
    x = torch.randn(2, channels, size, size)
    out = model(x)
    assert out.shape == (2, 10)
    out.logsumexp(1).sum().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("name", models.list_models())
def test_every_model_has_a_recipe_for_digits_and_photos(name):
    for kind in ("sketch", "greyscale", "photo"):
        recipe = models.default_recipe(name, kind)
        assert recipe["epochs"] >= 1 and recipe["batch_size"] >= 1 and recipe["lr"] > 0


def test_seed_structures_match_their_specification():
    cnn = models.create_model("cnn", 10, 1, 28)
    assert cnn.classifier[1].in_features == 6272  # 128 x 7 x 7
    assert [m.kernel_size for m in cnn.features if isinstance(m, torch.nn.Conv2d)] == [
        (11, 11),
        (5, 5),
    ]
    mlp = models.create_model("mlp", 10, 1, 28)
    linear = [m for m in mlp.modules() if isinstance(m, torch.nn.Linear)]
    assert [m.out_features for m in linear] == [512, 256, 128, 64, 10]
    vgg = models.create_model("vgg", 10, 3, 32)
    convs = [m.out_channels for m in vgg.features if isinstance(m, torch.nn.Conv2d)]
    assert convs == [64, 64, 128, 128, 256, 256, 512, 512]
    lenet = models.create_model("lenet", 10, 3, 32)
    assert lenet.classifier[1].in_features == 16 * 5 * 5


def test_the_published_cnn_recipe_is_not_the_default():
    recipe = models.default_recipe("cnn", "sketch")
    assert not (
        recipe["optimizer"] == "adam" and recipe["lr"] >= 1e-2 and recipe["batch_size"] <= 10
    )


def test_alexnet_sees_3x96x96_and_pretrained_offline_is_a_clear_error(monkeypatch):
    net = models.create_model("alexnet", 10, 1, 28)
    seen = {}
    net[1].features[0].register_forward_pre_hook(lambda m, i: seen.update(shape=i[0].shape))
    net(torch.zeros(1, 1, 28, 28))
    assert tuple(seen["shape"][1:]) == (3, 96, 96)

    import torchvision.models as tvm

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(tvm.AlexNet_Weights, "get_state_dict", offline)
    monkeypatch.setenv("TORCH_HOME", "/nonexistent-torch-home")
    with pytest.raises(RuntimeError, match="offline"):
        models.create_model("alexnet", 10, 3, 32, pretrained=True)


def test_unknown_model_and_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="unknown model"):
        models.create_model("resnet9000")
    with pytest.raises(ValueError):
        models.create_model("mlp", in_channels=2)


def test_cifarnet_convs_start_as_partial_identity_and_norms_only_shift():
    net = models.create_model("cifarnet", 10, 3, 32)
    convs = [m for m in net.blocks if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 6
    for conv in convs:
        n = min(conv.in_channels, conv.out_channels)
        x = torch.randn(2, conv.in_channels, 6, 6)
        assert torch.allclose(conv(x)[:, :n], x[:, :n], atol=1e-6)
    norms = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert norms and all(not m.weight.requires_grad and m.bias.requires_grad for m in norms)


def test_a_taken_name_is_refused():
    spec = models.get_spec("digitnet")
    with pytest.raises(ValueError, match="registered already"):
        models.register(models.ModelSpec("digitnet", models.LeNet, spec.recipes))
    assert models.get_spec("digitnet") is spec


def _trained_looking(net: torch.nn.Module) -> torch.nn.Module:
    """Random BatchNorm statistics and shifts, as a trained net has (fresh ones are the
    identity)."""
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 2.0)
            m.bias.data.normal_()
    return net.eval()


@pytest.mark.parametrize("members,widths,extra,channels", [(2, (32, 64, 128), True, 1), (3, (8, 16,
                                                                                             24),
                                                                                         False, 3)])
def test_an_ensemble_of_digitnets_fuses_into_one_net_with_the_same_logits(members, widths, extra,
                                                                          channels):
    torch.manual_seed(0)
    nets = [_trained_looking(models.create_model("digitnet", 10, channels, 28, widths=widths,
                                                 extra=extra)) for _ in range(members)]
    ensemble = models.Ensemble(nets).eval()
    fused = ensemble.fused()
    assert not isinstance(fused, models.Ensemble)
    # One pass, not one per member
    assert len(list(fused.modules())) == len(list(nets[0].modules()))
    x = torch.randn(5, channels, 28, 28)
    with torch.no_grad():
        assert torch.allclose(fused(x), ensemble(x), atol=1e-5)
        # The members are not one another: the average differs from each of them.
        assert not torch.allclose(ensemble(x), nets[0](x), atol=1e-3)


def test_an_ensemble_of_nets_that_cannot_stack_stays_as_it_is():
    ensemble = models.Ensemble([models.create_model("lenet", 10, 1, 28) for _ in range(2)])
    assert ensemble.fused() is ensemble
