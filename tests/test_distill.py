import pytest
import torch
from torch import nn

from core import checkpoint as ckpt
from core import distill, models


def _teacher(net, weight=1.0):
    return distill.Teacher(net.eval(), (0.5,), (0.5,), weight)


class _Fixed(nn.Module):
    """Answers with given logits whatever the images."""

    def __init__(self, logits):
        super().__init__()
        self.logits = logits

    def forward(self, x):
        return self.logits[:len(x)]


def test_loss_is_zero_where_the_student_answers_as_the_teacher_and_grows_with_the_gap():
    logits = torch.tensor([[4.0, 0.0, -2.0], [0.0, 3.0, 1.0]])
    images = torch.zeros(2, 1, 4, 4)
    labels = torch.tensor([0, 1])
    teacher = _teacher(_Fixed(logits))
    assert teacher.loss(logits.clone(), images, labels).item() == pytest.approx(0.0, abs=1e-6)
    near = teacher.loss(logits + torch.tensor([0.0, 0.5, 0.0]), images, labels).item()
    far = teacher.loss(logits + torch.tensor([0.0, 2.0, 0.0]), images, labels).item()
    assert 0 < near < far
    assert _teacher(_Fixed(logits), weight=3.0).loss(logits + torch.tensor([0.0, 2.0, 0.0]), images,
                                                     labels).item() == pytest.approx(3 * far)


def test_images_the_teacher_misreads_add_nothing():
    teacher_logits = torch.tensor([[4.0, 0.0], [4.0, 0.0]])  # reads both as class 0
    student = torch.tensor([[0.0, 4.0], [0.0, 4.0]])
    images = torch.zeros(2, 1, 4, 4)
    teacher = _teacher(_Fixed(teacher_logits))
    assert teacher.loss(student, images, torch.tensor([1, 1])).item() == 0.0
    both = teacher.loss(student, images, torch.tensor([0, 0])).item()
    one = teacher.loss(student, images, torch.tensor([0, 1])).item()
    # Averaged over the whole batch, the misread image counting zero
    assert one == pytest.approx(both / 2)


def test_its_gradient_moves_the_student_towards_the_teacher():
    target = torch.tensor([[2.0, 1.0, -1.0]])
    teacher = _teacher(_Fixed(target))
    logits = torch.zeros(1, 3, requires_grad=True)
    before = teacher.loss(logits, torch.zeros(1, 1, 4, 4), torch.tensor([0]))
    before.backward()
    with torch.no_grad():
        stepped = logits - 0.5 * logits.grad
    assert teacher.loss(stepped, torch.zeros(1, 1, 4, 4), torch.tensor([0])) < before


def _save_net(path, classes, input_shape):
    c, size, _ = input_shape
    net = models.create_model("lenet", len(classes), c, size)
    meta = ckpt.make_meta("lenet", "mnist", classes, input_shape, (0.1307,), (0.3081,), {})
    ckpt.save_checkpoint(path, meta, net.state_dict())
    return net


def test_load_teacher_checks_classes_and_input(tmp_path):
    digits = [str(i) for i in range(10)]
    _save_net(tmp_path / "t.pt", digits, (1, 28, 28))
    teacher = distill.load_teacher(tmp_path / "t.pt", digits, (1, 28, 28), 0.5, torch.device("cpu"))
    assert teacher.weight == 0.5 and teacher.mean == (0.1307,) and not teacher.net.training
    assert not any(p.requires_grad for p in teacher.net.parameters())
    with pytest.raises(ValueError, match="must know the same classes"):
        distill.load_teacher(tmp_path / "t.pt", digits[::-1], (1, 28, 28), 1.0, torch.device("cpu"))
    with pytest.raises(ValueError, match="takes 1x28x28 images but this data is 3x32x32"):
        distill.load_teacher(tmp_path / "t.pt", digits, (3, 32, 32), 1.0, torch.device("cpu"))
