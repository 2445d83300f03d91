import pytest
import torch
import torch.nn.functional as F

from pauc_ray.model import MLPEncoder, MoCo


def make_model(queue_size=10, momentum=0.9):
    torch.manual_seed(0)
    return MoCo(MLPEncoder(3, embedding_dim=4, hidden=(8,)), queue_size, momentum)


def test_forward_gives_unit_vectors_and_no_grad_for_keys():
    model = make_model()
    q, k = model(torch.randn(5, 3), torch.randn(5, 3))
    assert q.shape == k.shape == (5, 4)
    torch.testing.assert_close(q.norm(dim=1), torch.ones(5))
    assert q.requires_grad and not k.requires_grad


@pytest.mark.parametrize("batches", [[3, 3, 3, 3], [7, 7], [25], [4, 1, 9, 2]])
def test_queue_accepts_any_batch_size_and_keeps_latest_keys(batches):
    """Slow reference: a Python list of all keys; the queue holds the last R in ring order."""
    model = make_model(queue_size=10)
    written = []
    for b in batches:
        keys = F.normalize(torch.randn(b, 4), dim=1)
        model.enqueue(keys)
        written.extend(keys)
    latest = torch.stack(written[-10:])
    assert int(model.queue_filled) == min(10, len(written))
    negatives = model.negatives()
    assert negatives.shape[0] == min(10, len(written))
    # the same set of keys, wherever the ring pointer stands
    got = torch.tensor(sorted(map(tuple, negatives.tolist())))
    want = torch.tensor(sorted(map(tuple, latest[-negatives.shape[0] :].tolist())))
    torch.testing.assert_close(got, want)
    assert int(model.queue_ptr) == sum(batches) % 10


def test_negatives_empty_before_first_enqueue():
    assert make_model().negatives().shape == (0, 4)


def test_momentum_update_moves_key_encoder_towards_query_encoder():
    model = make_model(momentum=0.9)
    with torch.no_grad():
        for p in model.encoder_q.parameters():
            p.add_(1.0)
    before = [p.clone() for p in model.encoder_k.parameters()]
    model.momentum_update()
    for p_k, p_q, p0 in zip(model.encoder_k.parameters(), model.encoder_q.parameters(), before):
        torch.testing.assert_close(p_k, 0.9 * p0 + 0.1 * p_q)
        assert not p_k.requires_grad


def test_queue_is_part_of_the_state_dict():
    model = make_model()
    model.enqueue(F.normalize(torch.randn(3, 4), dim=1))
    state = model.state_dict()
    assert {"queue", "queue_ptr", "queue_filled"} <= set(state)
    clone = make_model()
    clone.load_state_dict(state)
    torch.testing.assert_close(clone.negatives(), model.negatives())


def test_bad_arguments():
    with pytest.raises(ValueError, match="queue_size"):
        MoCo(MLPEncoder(3, 4), queue_size=-1)
    with pytest.raises(ValueError, match="momentum"):
        MoCo(MLPEncoder(3, 4), queue_size=4, momentum=1.5)
    with pytest.raises(ValueError, match="x must be"):
        MLPEncoder(3, 4)(torch.randn(2, 5))
