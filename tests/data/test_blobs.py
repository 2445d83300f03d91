import numpy as np
import pytest

from pauc_ray.data.blobs import make_blob_data


def test_shapes_standardised_and_seeded():
    a = make_blob_data(4, samples_per_class=50, seed=1)
    b = make_blob_data(4, samples_per_class=50, seed=1)
    assert a.x.shape == (200, 3) and a.x.dtype == np.float32
    np.testing.assert_allclose(a.x.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(a.x.std(0), 1, atol=1e-4)
    assert np.bincount(a.labels).tolist() == [50] * 4
    np.testing.assert_array_equal(a.ids, np.arange(200))
    np.testing.assert_array_equal(a.x, b.x)
    assert not a.x.flags.writeable


def test_bad_classes():
    with pytest.raises(ValueError, match="classes"):
        make_blob_data(1)
