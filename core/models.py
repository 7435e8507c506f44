"""Model registry: a name maps to a constructor and a default training recipe.

The UI, the CLI and the tests only ever see names (`list_models`, `create_model`), never classes, so
adding a model is one `register(...)` call. Every model takes `num_classes`, `in_channels` and
`image_size` and works for 1x28x28 digits as well as 3x32x32 photos; nets that were specified for
another input (AlexNet at 3x96x96) get an `InputAdapter` in front instead of a second copy of the
net.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ModelSpec", "register", "list_models", "get_spec", "create_model", "default_recipe",
           "transfer_recipe", "count_parameters", "InputAdapter", "Ensemble", "head_of",
           "transfer_weights", "freeze_backbone", "hold_norms"]


@dataclass(frozen=True)
class ModelSpec:
    name: str
    build: Callable[..., nn.Module]
    # The training recipe per input kind of the data ("sketch", "greyscale", "photo": core.kinds).
    recipes: dict[str, dict] = field(default_factory=dict)
    # Training-time settings (TrainConfig fields) the constructor takes when they are set, such as
    # alexnet's `pretrained`; they shape the starting weights only, so the checkpoint does not keep
    # them.
    build_options: tuple[str, ...] = ()
    # Called once before training with the model and a sample of normalised training images (N,C,H,W
    # floats).
    prepare: Callable[[nn.Module, torch.Tensor], None] | None = None
    # How much faster than the base learning rate the BatchNorm shifts learn (their decay per step
    # stays the same).
    norm_bias_lr_scale: float = 1.0
    # The recipe for fine-tuning a trained net of this architecture on a few images of new classes
    # (core.transfer).
    transfer: dict = field(default_factory=dict)


_REGISTRY: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> None:
    """Add a model; a name that is taken is refused (two models under one name would make
    checkpoints ambiguous)."""
    if spec.name in _REGISTRY:
        raise ValueError(f"a model named {spec.name!r} is registered already")
    _REGISTRY[spec.name] = spec


def list_models() -> list[str]:
    return list(_REGISTRY)


def get_spec(name: str) -> ModelSpec:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(_REGISTRY)}") from None


def create_model(name: str, num_classes: int = 10, in_channels: int = 1, image_size: int = 28,
                 **kwargs) -> nn.Module:
    """Build a registered model for inputs of shape (in_channels, image_size, image_size)."""
    if num_classes < 2:
        raise ValueError("num_classes must be at least 2")
    if in_channels not in (1, 3):
        raise ValueError("in_channels must be 1 or 3")
    if not 8 <= image_size <= 256:
        raise ValueError("image_size must be between 8 and 256")
    spec = get_spec(name)
    try:
        return spec.build(num_classes=num_classes, in_channels=in_channels, image_size=image_size,
                          **kwargs)
    except TypeError as exc:
        raise ValueError(f"model {name!r} does not accept {sorted(kwargs)}: {exc}") from None


def default_recipe(name: str, kind: str) -> dict:
    """The training recipe that works for this model on data of an input kind ("sketch",
    "greyscale", "photo")."""
    spec = get_spec(name)
    try:
        return dict(spec.recipes[kind])
    except KeyError:
        raise ValueError(f"model {name!r} has no recipe for {kind!r} data") from None


def transfer_recipe(name: str, kind: str) -> dict:
    """The recipe for starting from a trained net (core.transfer): the model's fine-tuning recipe,
    else its default recipe for the kind of data."""
    spec = get_spec(name)
    return dict(spec.transfer) if spec.transfer else default_recipe(name, kind)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def head_of(model: nn.Module) -> tuple[str, nn.Linear]:
    """The output layer of a registered net: its last nn.Linear (each net here ends in one), with
    its name."""
    linears = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"{type(model).__name__} has no linear output layer to replace")
    return linears[-1]


def transfer_weights(model: nn.Module, source: nn.Module) -> int:
    """Copy every weight of `source` (a trained net of the same architecture, for other classes)
    into `model` except its output layer, which keeps its fresh initialisation; returns how many
    tensors were copied."""
    head, _ = head_of(model)
    own, theirs = model.state_dict(), source.state_dict()
    body = [k for k in own if not k.startswith(head + ".")]
    wrong = [k for k in body if k not in theirs or theirs[k].shape != own[k].shape]
    if wrong:
        raise ValueError(f"the source net does not fit this one (first difference: {wrong[0]})")
    model.load_state_dict({**own, **{k: theirs[k] for k in body}})
    return len(body)


def freeze_backbone(model: nn.Module) -> None:
    """Train only the output layer: every other weight stops learning (see also `hold_norms`)."""
    _, layer = head_of(model)
    keep = {id(p) for p in layer.parameters()}
    for p in model.parameters():
        if id(p) not in keep:
            p.requires_grad_(False)


def hold_norms(model: nn.Module) -> None:
    """Keep the BatchNorm layers on the statistics they were trained with (a frozen backbone's):
    call after model.train(), which puts them back in training mode."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()


def _flat_features(features: nn.Module, in_channels: int, image_size: int) -> int:
    with torch.no_grad():
        return features(torch.zeros(1, in_channels, image_size, image_size)).flatten(1).shape[1]


class InputAdapter(nn.Module):
    """Resize and re-channel a batch to the input a net was designed for (grey -> RGB by
    repetition)."""

    def __init__(self, in_channels: int, out_channels: int, size: int):
        super().__init__()
        self.in_channels, self.out_channels, self.size = in_channels, out_channels, size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.in_channels == 1 and self.out_channels == 3:
            x = x.expand(-1, 3, -1, -1)
        if x.shape[-1] != self.size or x.shape[-2] != self.size:
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        return x


# ------------------------------------------------------------------------------------------------
# The five seed nets, with the structure they were published with.

def _fc_head(flat: int, hidden: tuple[int, int], num_classes: int, dropout: float) -> nn.Sequential:
    """Flatten, two ReLU+dropout hidden layers, linear output."""
    (a, b) = hidden
    return nn.Sequential(nn.Flatten(), nn.Linear(flat, a), nn.ReLU(), nn.Dropout(dropout),
                         nn.Linear(a, b), nn.ReLU(), nn.Dropout(dropout), nn.Linear(b, num_classes))


class SigmoidMLP(nn.Module):
    """4 hidden sigmoid layers: in-512-256-128-64-classes."""

    def __init__(self, num_classes: int, in_channels: int, image_size: int):
        super().__init__()
        widths = [in_channels * image_size * image_size, 512, 256, 128, 64]
        layers: list[nn.Module] = [nn.Flatten()]
        for a, b in zip(widths, widths[1:]):
            layers += [nn.Linear(a, b), nn.Sigmoid()]
        layers.append(nn.Linear(widths[-1], num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class TwoBlockCNN(nn.Module):
    """conv 64 k11 + pool, conv 128 k5 + pool, FC 2048-1024 with dropout 0.3 (6272 inputs on
    28x28)."""

    def __init__(self, num_classes: int, in_channels: int, image_size: int):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 64, 11, padding="same"), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(64, 128, 5, padding="same"), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.classifier = _fc_head(_flat_features(self.features, in_channels, image_size), (2048,
                                                                                            1024),
                                   num_classes, dropout=0.3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class VGGStyle(nn.Module):
    """Four blocks of two 3x3 convs (64, 128, 256, 512), each followed by max-pool; FC 4096-4096."""

    def __init__(self, num_classes: int, in_channels: int, image_size: int):
        super().__init__()
        layers: list[nn.Module] = []
        c = in_channels
        for width in (64, 128, 256, 512):
            layers += [nn.Conv2d(c, width, 3, padding=1), nn.ReLU(),
                       nn.Conv2d(width, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
            c = width
        self.features = nn.Sequential(*layers)
        self.classifier = _fc_head(_flat_features(self.features, in_channels, image_size), (4096,
                                                                                            4096),
                                   num_classes, dropout=0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def build_alexnet(num_classes: int, in_channels: int, image_size: int,
                  pretrained: bool = False) -> nn.Module:
    """torchvision's AlexNet fed 3x96x96, with a new last layer for `num_classes`."""
    from torchvision.models import AlexNet_Weights, alexnet

    weights = None
    if pretrained:
        try:
            weights = AlexNet_Weights.IMAGENET1K_V1
            net = alexnet(weights=weights)
        except Exception as exc:  # urllib raises several types when offline
            raise RuntimeError("ImageNet weights for alexnet could not be downloaded (this machine "
                               f"looks offline): {exc}. Train without pretrained weights or run "
                               "where the internet is reachable.") from None
    else:
        net = alexnet(weights=None)
    net.classifier[-1] = nn.Linear(net.classifier[-1].in_features, num_classes)
    return nn.Sequential(InputAdapter(in_channels, 3, 96), net)


class LeNet(nn.Module):
    """conv 6 k5 + pool, conv 16 k5 + pool, FC 120-84, as for 32x32x3 CIFAR-10."""

    def __init__(self, num_classes: int, in_channels: int, image_size: int):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, 5), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        )
        flat = _flat_features(self.features, in_channels, image_size)
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(flat, 120), nn.ReLU(),
                                        nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


# ------------------------------------------------------------------------------------------------
# Fast default nets: BatchNorm conv nets sized for a 2-core CPU.

def _conv_pool_bn(c_in: int, c_out: int, k: int = 3, pool: bool = True,
                  groups: int = 1) -> list[nn.Module]:
    # Pooling before BatchNorm/ReLU runs those on a quarter of the pixels: same function, less
    # memory traffic.
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, k, padding=k // 2, bias=False, groups=groups)]
    if pool:
        layers.append(nn.MaxPool2d(2))
    return layers + [nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


class DigitNet(nn.Module):
    """Small BatchNorm CNN for digits: 5x5 conv, two 3x3 convs, each pooled, global max-pool, linear
    head.

    With the default widths (16, 32, 64) and the extra 14x14 conv, one epoch of MNIST takes seconds
    on a 2-core CPU and reaches ~99%; wider (`widths=(32, 64, 128)`) with more epochs and
    augmentation reaches ~99.6%.
    """

    def __init__(self, num_classes: int, in_channels: int, image_size: int, widths: tuple = (16, 32,
                                                                                             64),
                 extra: bool = True, groups: int = 1):
        super().__init__()
        self.arguments = dict(num_classes=num_classes, in_channels=in_channels,
                              image_size=image_size, widths=tuple(widths), extra=extra)
        a, b, c = widths
        # `groups` > 1: that many nets side by side after the first conv, which they share as input
        # (`stack`).
        layers = _conv_pool_bn(in_channels, a, 5) + _conv_pool_bn(a, b, groups=groups)
        if extra:
            layers += _conv_pool_bn(b, b, pool=False, groups=groups)
        layers += _conv_pool_bn(b, c, groups=groups)
        self.features = nn.Sequential(*layers, nn.AdaptiveMaxPool2d(1), nn.Flatten())
        self.head = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The scaled-down logits keep early steps at a high learning rate from overshooting.
        return self.head(self.features(x)) / 4

    @classmethod
    def stack(cls, members: list[DigitNet]) -> DigitNet:
        """One net whose logits are the mean of the members' (an `Ensemble`'s), in one forward pass:
        their channels side by side, each member's convolutions a group of their own, the heads
        averaged. One sketch through two members then costs about 40% more than through one, instead
        of twice as much (docs/handwriting.md)."""
        n, arguments = len(members), members[0].arguments
        net = cls(**{**arguments, "widths": tuple(w * n for w in arguments["widths"])}, groups=n)
        states = [m.state_dict() for m in members]
        stacked = {}
        for key, value in net.state_dict().items():
            parts = [state[key] for state in states]
            if key == "head.weight":  # the members' features side by side, each weighed 1/n
                stacked[key] = torch.cat(parts, 1) / n
            elif key == "head.bias":
                stacked[key] = torch.stack(parts).mean(0)
            else:  # BatchNorm's step count is a scalar that inference does not read
                stacked[key] = torch.cat(parts) if value.ndim else parts[0]
        net.load_state_dict(stacked)
        return net.eval()


def _identity_conv(c_in: int, c_out: int) -> nn.Conv2d:
    """3x3 conv, default init except that its first min(c_in, c_out) filters copy their input
    channel."""
    conv = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
    with torch.no_grad():
        n = min(c_in, c_out)
        nn.init.dirac_(conv.weight[:n, :n])
    return conv


def _shift_only_norm(c: int) -> nn.BatchNorm2d:
    norm = nn.BatchNorm2d(c)
    norm.weight.requires_grad_(False)
    return norm


class CifarNet(nn.Module):
    """Residual-free conv net in the spirit of airbench: three conv-pool-BN blocks (64, 256, 256),
    GELU.

    The first layer is a fixed 2x2 patch-whitening convolution (`init_whitening`, its spec's
    `prepare`) computed from training images, so the net starts from decorrelated inputs and trains
    in few epochs. Each 3x3 conv starts as a partial identity (it passes its input channels through)
    and the BatchNorm scales stay at 1 while their shifts learn at the spec's `norm_bias_lr_scale`
    times the base rate: the net starts close to a shallow one and deepens as it trains.
    """

    def __init__(self, num_classes: int, in_channels: int, image_size: int, widths: tuple = (64,
                                                                                             256,
                                                                                             256)):
        super().__init__()
        n_white = 2 * in_channels * 4
        self.whiten = nn.Conv2d(in_channels, n_white, 2, bias=True)
        self.whiten.weight.requires_grad_(False)
        blocks: list[nn.Module] = []
        c = n_white
        for w in widths:
            blocks += [_identity_conv(c, w), nn.MaxPool2d(2), _shift_only_norm(w), nn.GELU(),
                       _identity_conv(w, w), _shift_only_norm(w), nn.GELU()]
            c = w
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(c, num_classes, bias=False)

    @torch.no_grad()
    def init_whitening(self, images: torch.Tensor, eps: float = 5e-4) -> None:
        """Set the first conv to the PCA whitening of 2x2 patches of `images` (N,C,H,W floats,
        normalised)."""
        c = images.shape[1]
        patches = images.unfold(2, 2, 1).unfold(3, 2, 1).transpose(1, 3).reshape(-1, c * 4).double()
        patches = patches - patches.mean(0)
        cov = patches.T @ patches / len(patches)
        eigval, eigvec = torch.linalg.eigh(cov)
        filters = (eigvec.T / torch.sqrt(eigval + eps)[:, None]).reshape(c * 4, c, 2, 2)
        self.whiten.weight.copy_(torch.cat([filters, -filters]).float())
        self.whiten.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.gelu(self.whiten(x))
        x = self.blocks(x)
        x = F.adaptive_max_pool2d(x, 1).flatten(1)
        return self.head(x) / 8


class Ensemble(nn.Module):
    """Several trained copies of one architecture whose logits are averaged (a shipped checkpoint
    may hold one).

    Nets trained from different seeds make partly different mistakes, so the average can be right
    more often than either (CIFAR-10 here: 91.79% from 91.11% and 91.36%; handwriting:
    docs/handwriting.md); where their mistakes are mostly shared it is not (MNIST-only digit nets on
    pen digits). It costs one forward pass per member, or one pass of a wider net where the members
    can be stacked (`fused`).
    """

    def __init__(self, members: list[nn.Module]):
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([m(x) for m in self.members]).mean(0)

    def fused(self) -> nn.Module:
        """The same function as one net, where the members' class can `stack` them (one pass instead
        of one per member: quicker answers to single images); else the ensemble itself."""
        stack = getattr(type(self.members[0]), "stack", None)
        return stack(list(self.members)) if stack is not None else self


# ------------------------------------------------------------------------------------------------
# Recipes. Keys are the training config's names (core.config.TrainConfig).

def _recipe(optimizer: str, lr: float, batch_size: int, epochs: int, schedule: str = "onecycle",
            weight_decay: float = 0.0, label_smoothing: float = 0.0, augment: bool = True,
            momentum: float = 0.9, tta_shift: int = 0, **extra) -> dict:
    return dict(optimizer=optimizer, lr=lr, batch_size=batch_size, epochs=epochs, schedule=schedule,
                weight_decay=weight_decay, label_smoothing=label_smoothing, augment=augment,
                momentum=momentum, tta_shift=tta_shift, **extra)


def _recipes(sketch: dict, photo: dict, greyscale: dict | None = None) -> dict[str, dict]:
    """Recipes per input kind; greyscale pictures train like sketches unless a model says
    otherwise."""
    return {"sketch": sketch, "greyscale": greyscale or sketch, "photo": photo}


register(ModelSpec(
    "digitnet", DigitNet,
    recipes=_recipes(_recipe("sgd", 0.2, 256, 1, weight_decay=5e-4, label_smoothing=0.1),
                     _recipe("sgd", 0.2, 256, 10, weight_decay=5e-4, label_smoothing=0.1),
                     # Greyscale pictures (Fashion-MNIST) need more epochs than digits: on a
                     # validation split of its training set, 4 / 8 / 12 epochs read 91.0 / 91.5 /
                     # 92.2% (docs/measurements.md).
                     _recipe("sgd", 0.2, 256, 12, weight_decay=5e-4, label_smoothing=0.1)),
    # Fine-tuning the digit model on 20 Fashion-MNIST images per class (a validation split of its
    # training set, docs/own-classes.md): the whole net at lr 0.02 reads 81%, its output layer
    # alone 72%.
    transfer=_recipe("sgd", 0.02, 32, 30, schedule="cosine", weight_decay=5e-4,
                     label_smoothing=0.1)))
register(ModelSpec(
    "cifarnet", CifarNet,
    recipes=_recipes(_recipe("sgd", 0.2, 512, 3, weight_decay=5e-4, label_smoothing=0.1),
                     _recipe("sgd", 0.75, 512, 15, weight_decay=1.3e-3, label_smoothing=0.2,
                             momentum=0.85, tta_shift=1)),
    prepare=lambda model, images: model.init_whitening(images), norm_bias_lr_scale=64.0,
    transfer=_recipe("sgd", 0.05, 32, 30, schedule="cosine", weight_decay=5e-4,
                     label_smoothing=0.1)))
register(ModelSpec(
    "mlp", SigmoidMLP,
    recipes=_recipes(_recipe("adam", 1e-3, 128, 10, schedule="cosine", augment=False),
                     _recipe("adam", 1e-3, 128, 10, schedule="cosine", augment=False))))
register(ModelSpec(
    "cnn", TwoBlockCNN,
    # The published recipe (Adam lr 1e-2, batch 10) diverges; Adam 1e-3 at batch 128 trains.
    recipes=_recipes(_recipe("adam", 1e-3, 128, 2, schedule="cosine"),
                     _recipe("adam", 1e-3, 128, 10, schedule="cosine"))))
register(ModelSpec(
    "vgg", VGGStyle,
    recipes=_recipes(_recipe("sgd", 0.01, 128, 2, schedule="cosine", weight_decay=5e-4),
                     _recipe("sgd", 0.01, 128, 20, schedule="cosine", weight_decay=5e-4))))
register(ModelSpec(
    "alexnet", build_alexnet,
    recipes=_recipes(_recipe("sgd", 0.01, 128, 2, schedule="cosine", weight_decay=5e-4),
                     _recipe("sgd", 0.01, 128, 10, schedule="cosine", weight_decay=5e-4)),
    build_options=("pretrained",)))
register(ModelSpec(
    "lenet", LeNet,
    recipes=_recipes(_recipe("adamw", 2e-3, 128, 5, schedule="cosine", weight_decay=1e-4),
                     _recipe("adamw", 2e-3, 128, 20, schedule="cosine", weight_decay=1e-4))))
