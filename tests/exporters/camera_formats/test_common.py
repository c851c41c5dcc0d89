"""_common: quaternions against an independent axis-angle construction, including the near-180-degree
rotations where a naive trace-based conversion loses precision."""
import math

import numpy as np
import pytest

from exporters.camera_formats._common import image_name, matrix_from_quat_wxyz, num, pinhole_from_K, quat_wxyz_from_matrix


def rodrigues(axis, angle):
    """Rotation by `angle` about unit `axis` (right hand), written out independently of _common."""
    x, y, z = np.asarray(axis, dtype=float) / np.linalg.norm(axis)
    k = np.array([[0, -z, y], [z, 0, -x], [-y, x, 0]])
    return np.eye(3) + math.sin(angle) * k + (1 - math.cos(angle)) * k @ k


@pytest.mark.parametrize("angle", [0.0, 0.3, math.pi / 2, 3.0, math.pi - 1e-9, math.pi])
def test_quaternion_matches_axis_angle(angle):
    rng = np.random.default_rng(1)
    for _ in range(20):
        axis = rng.normal(size=3)
        axis /= np.linalg.norm(axis)
        R = rodrigues(axis, angle)
        q = quat_wxyz_from_matrix(R)
        expected = np.array([math.cos(angle / 2), *(math.sin(angle / 2) * axis)])
        expected = -expected if expected[0] < 0 else expected
        if abs(expected[0]) < 1e-6:  # at 180 degrees q and -q are both w = 0: compare up to sign
            expected = expected * np.sign(expected @ q)
        np.testing.assert_allclose(q, expected, atol=1e-12)
        np.testing.assert_allclose(matrix_from_quat_wxyz(q), R, atol=1e-12)
        assert q[0] >= 0


def test_quaternion_of_quarter_turn_about_z():
    np.testing.assert_allclose(quat_wxyz_from_matrix(rodrigues([0, 0, 1], math.pi / 2)),
                               [math.sqrt(0.5), 0, 0, math.sqrt(0.5)], atol=1e-15)


def test_helpers():
    assert image_name(7) == "00007.png"
    assert float(num(0.1 + 0.2)) == 0.1 + 0.2
    with pytest.raises(ValueError, match="skew"):
        pinhole_from_K(np.array([[500.0, 3.0, 320.0], [0.0, 500.0, 240.0], [0.0, 0.0, 1.0]]))
