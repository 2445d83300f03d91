import numpy as np
import pytest
import torch

from pauc_ray.evaluation.splits import labelled_split


def test_a_split_comes_back_as_tensors_of_the_asked_dtype_with_int64_labels():
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    xtr, ytr, xte, yte = labelled_split(x, [0, 1, 0, 1], x[:2], np.array([1, 0]), torch.float64)
    assert xtr.dtype == xte.dtype == torch.float64 and ytr.dtype == yte.dtype == torch.int64
    assert torch.equal(xtr, torch.from_numpy(x).double()) and yte.tolist() == [1, 0]


@pytest.mark.parametrize(
    ("train", "labels", "test", "message"),
    [
        (np.zeros((4, 3)), np.zeros(4), np.zeros((2, 5)), "must be \\(N, D\\) and \\(M, D\\)"),
        (np.zeros(4), np.zeros(4), np.zeros((2, 3)), "must be \\(N, D\\) and \\(M, D\\)"),
        (np.zeros((4, 3)), np.zeros(3), np.zeros((2, 3)), "one label per feature row"),
    ],
)
def test_mismatched_shapes_are_refused_with_what_was_given(train, labels, test, message):
    with pytest.raises(ValueError, match=message):
        labelled_split(train, labels, test, np.zeros(len(test)))


def test_read_only_arrays_are_copied_without_a_warning(recwarn):
    x = np.ones((3, 2), dtype=np.float32)
    x.setflags(write=False)
    labels = np.zeros(3, dtype=np.int64)
    labels.setflags(write=False)
    xtr, ytr, _, _ = labelled_split(x, labels, x, labels)
    xtr += 1  # its own memory
    assert not [w for w in recwarn if "not writable" in str(w.message)]
    assert x[0, 0] == 1 and ytr.tolist() == [0, 0, 0]
