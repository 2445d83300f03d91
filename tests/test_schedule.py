import pytest

from pauc_ray.schedule import step_learning_rate


def test_paper_schedule_at_200_epochs():
    lr = [step_learning_rate(e, base_lr=0.03, epochs=200) for e in range(200)]
    assert lr[119] == pytest.approx(0.03)
    assert lr[120] == pytest.approx(0.003)
    assert lr[160] == pytest.approx(0.0003)
    assert lr[199] == pytest.approx(0.0003)


def test_bad_epochs():
    with pytest.raises(ValueError, match="epochs"):
        step_learning_rate(0, base_lr=0.1, epochs=0)
