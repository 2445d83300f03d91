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


def test_shuffle_bn_keys_follow_their_samples():
    from pauc_ray.model.backbones import EncoderSpec, GhostBatchNorm2d, build_encoder

    torch.manual_seed(0)
    spec = EncoderSpec("resnet18", "image", (1, 8, 8), embedding_dim=16, bn_groups=2)
    encoder = build_encoder(spec)
    assert any(isinstance(m, GhostBatchNorm2d) for m in encoder.modules())
    model = MoCo(encoder, 16, bn_groups=2)
    x = torch.randn(8, 1, 8, 8)
    model.eval()  # eval: no batch statistics, so the shuffle must be invisible
    q, k = model(x, x)
    torch.testing.assert_close(q, k)
    model.train()
    q, k = model(x, x)
    assert not torch.allclose(q, k)  # other statistics for keys than for queries
    assert q.shape == k.shape == (8, 16)


def test_ghost_batch_norm_equals_batch_norm_per_group():
    from pauc_ray.model.backbones import GhostBatchNorm2d

    ghost = GhostBatchNorm2d(3, groups=2)
    x = torch.randn(8, 3, 4, 4)
    want = torch.cat([torch.nn.BatchNorm2d(3)(x[:4]), torch.nn.BatchNorm2d(3)(x[4:])])
    torch.testing.assert_close(ghost(x), want)
