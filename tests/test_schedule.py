import numpy as np
import pytest
import torch

from pauc_ray.schedule import build_lr_scheduler


def step_learning_rate(epoch: int, *, base_lr: float, epochs: int) -> float:
    """The slow obvious reference: the paper's schedule per epoch (x0.1 at 60 % and 80 %)."""
    return base_lr * 0.1 ** sum(epoch >= round(m * epochs) for m in (0.6, 0.8))


def test_paper_schedule_drops_at_60_and_80_percent():
    lr = rates("step", epochs=200, steps=1, base=0.03)
    assert lr[119] == pytest.approx(0.03) and lr[120] == pytest.approx(0.003)
    assert lr[159] == pytest.approx(0.003) and lr[160] == pytest.approx(0.0003)


def test_bad_epochs():
    with pytest.raises(ValueError):
        rates("step", epochs=0, steps=3)


def rates(schedule, *, epochs, steps, warmup=0.0, start_step=0, base=1.0, milestones=(0.6, 0.8)):
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=base)
    scheduler = build_lr_scheduler(
        optimizer,
        schedule,
        epochs=epochs,
        steps_per_epoch=steps,
        warmup_epochs=warmup,
        milestones=milestones,
        start_step=start_step,
    )
    out = []
    for _ in range(epochs * steps - start_step):
        out.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return np.array(out)


def test_cosine_warms_up_linearly_then_decays_to_zero():
    lr = rates("cosine", epochs=10, steps=10, warmup=2, base=0.5)
    warm = lr[:20]
    assert np.all(np.diff(warm) > 0) and warm[0] == pytest.approx(0.005)
    np.testing.assert_allclose(np.diff(warm), np.diff(warm)[0], rtol=1e-6)  # linear
    assert lr[20] == pytest.approx(0.5)  # the peak, where the warm-up ends
    assert np.all(np.diff(lr[20:]) < 0) and lr[-1] < 0.001
    # the slow obvious reference: half a cosine over the 80 steps after the warm-up
    want = 0.25 * (1 + np.cos(np.pi * np.arange(80) / 80))
    np.testing.assert_allclose(lr[20:], want, rtol=1e-6, atol=1e-9)


def test_cosine_without_warmup_starts_at_the_base_rate():
    lr = rates("cosine", epochs=3, steps=4)
    assert lr[0] == pytest.approx(1.0) and np.all(np.diff(lr) < 0)


def test_step_schedule_per_step_matches_the_per_epoch_reference():
    lr = rates("step", epochs=20, steps=3, base=0.03)
    want = [step_learning_rate(e, base_lr=0.03, epochs=20) for e in range(20) for _ in range(3)]
    np.testing.assert_allclose(lr, want, rtol=1e-9)


@pytest.mark.parametrize("schedule", ["cosine", "step"])
def test_a_resumed_scheduler_continues_the_same_curve(schedule):
    whole = rates(schedule, epochs=6, steps=5, warmup=1)
    resumed = rates(schedule, epochs=6, steps=5, warmup=1, start_step=13)
    np.testing.assert_allclose(resumed, whole[13:], rtol=1e-9)


def test_unknown_schedule_is_named():
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    with pytest.raises(ValueError, match="schedule"):
        build_lr_scheduler(optimizer, "linear", epochs=2, steps_per_epoch=2)
