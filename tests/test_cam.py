"""Class activation maps as data: the heatmap function and the CAM a Prediction keeps."""

from __future__ import annotations

import numpy as np
import pytest

from desktop.core.cam import cam_heatmap, cam_heatmap_over_image
from desktop.core.preprocessing import image_box, input_rect
from desktop.core.results import Prediction


def test_heatmap_at_the_grid_size_is_relu_scaled_by_the_maximum() -> None:
    cam = np.array([[-1.0, 0.0], [1.0, 3.0]])
    heat = cam_heatmap(cam, (2, 2))
    assert heat.dtype == np.float32
    np.testing.assert_allclose(heat, [[0.0, 0.0], [1 / 3, 1.0]], rtol=1e-6)


def test_heatmap_upsamples_bilinearly_with_centred_pixels() -> None:
    # Output pixel x samples the grid at (x + 0.5) * 2 / 4 - 0.5 = -0.25, 0.25, 0.75, 1.25,
    # clamped to the edges: values 0, 0.5, 1.5, 2, then divided by the maximum 2.
    heat = cam_heatmap(np.array([[0.0, 2.0]]), (3, 4))
    assert heat.shape == (3, 4)
    np.testing.assert_allclose(heat, np.tile([0.0, 0.25, 0.75, 1.0], (3, 1)), atol=1e-7)


def test_heatmap_of_a_non_square_grid_keeps_rows_and_columns() -> None:
    cam = np.zeros((4, 2))
    cam[0, 1] = 5.0  # top right
    heat = cam_heatmap(cam, (8, 6))
    assert heat.shape == (8, 6)
    # Columns sample the grid at x = -0.33, 0, 0.33, 0.67, 1, 1.33 (clamped to 0..1), rows
    # at y = -0.25, 0.25, 0.75, ... (clamped at 0): the hot cell fills the top right.
    np.testing.assert_allclose(heat[0], [0, 0, 1 / 3, 2 / 3, 1, 1], atol=1e-6)
    np.testing.assert_allclose(heat[1], [0, 0, 0.25, 0.5, 0.75, 0.75], atol=1e-6)
    assert heat[4:, :].max() == 0.0  # rows far from the hot cell


@pytest.mark.parametrize("cam", [np.full((2, 2), -4.0), np.zeros((3, 3)), np.full((1, 1), np.nan)])
def test_heatmap_without_positive_evidence_is_all_zero(cam: np.ndarray) -> None:
    heat = cam_heatmap(cam, (5, 7))
    assert heat.shape == (5, 7) and not heat.any()


def test_heatmap_rejects_a_map_that_is_not_a_grid() -> None:
    with pytest.raises(ValueError, match=r"\(h, w\) grid"):
        cam_heatmap(np.zeros((2, 2, 10)), (4, 4))


def test_a_letterboxed_images_map_is_the_part_of_the_inputs_map_over_it() -> None:
    # A 4:1 photo letterboxed into a 32x32 input fills rows 12-20 of it: grid rows 1 and 2
    # of a 4x4 map; rows 0 and 3 lie over the white padding above and below.
    photo = np.zeros((100, 400, 3), dtype=np.uint8)
    assert image_box((400, 100), (32, 32), "letterbox") == (0, 12, 32, 8)
    rect = input_rect(photo, (32, 32), "letterbox")
    assert rect == (0.0, -1.5, 1.0, 4.0)  # the input: 400x400 photo pixels, centred
    over_padding, over_photo = np.zeros((4, 4)), np.zeros((4, 4))
    over_padding[0, :] = 1.0
    over_photo[1, :2] = 1.0  # the photo's left half, upper part

    heat = cam_heatmap_over_image(over_padding, (100, 400), rect)
    assert heat.shape == (100, 400) and heat.max() < 1e-6  # nothing of it on the photo
    heat = cam_heatmap_over_image(over_photo, (100, 400), rect)
    assert heat[0, :100].min() > 0.99 and heat[:, 300:].max() < 1e-6
    # A stretched photo fills the input: its map is the whole map, as cam_heatmap draws it.
    stretch = input_rect(photo, (32, 32), "stretch")
    whole = cam_heatmap_over_image(over_padding, (100, 400), stretch)
    np.testing.assert_array_equal(whole, cam_heatmap(over_padding, (100, 400)))


def test_an_item_crops_map_covers_the_items_square_and_nothing_else() -> None:
    # Item mode: the input was the square around the item, a quarter of the photo's width.
    # The whole map lies over that square; the rest of the photo, unseen, gets no heat.
    rect = (0.5, 0.25, 0.25, 0.5)  # of a (height 200, width 400) photo: x 200-300, y 50-150
    heat = cam_heatmap_over_image(np.ones((4, 4)), (200, 400), rect)
    assert heat[50:150, 200:300].min() > 0.99
    assert heat[:50].max() == 0 and heat[150:].max() == 0
    assert heat[:, :200].max() == 0 and heat[:, 300:].max() == 0
    # A square past the photo's edge: only its part over the photo is drawn.
    heat = cam_heatmap_over_image(np.ones((4, 4)), (200, 400), (-0.1, -0.2, 0.25, 0.5))
    assert heat[:60, :60].min() > 0.99 and heat[60:].max() == 0 and heat[:, 60:].max() == 0
    # One wholly off the photo (no mode makes one, but the geometry must hold): no heat.
    for rect in [(1.5, 0.0, 0.25, 0.5), (0.0, 1.2, 0.25, 0.5), (-0.5, -0.9, 0.25, 0.5)]:
        assert not cam_heatmap_over_image(np.ones((4, 4)), (200, 400), rect).any()


def test_prediction_keeps_its_own_read_only_copy_of_the_map() -> None:
    batch = np.arange(2 * 4 * 2 * 3, dtype=np.float64).reshape(2, 4, 2, 3)
    prediction = Prediction("a.jpg", np.array([0.1, 0.2, 0.7]), cam=batch[1, :, :, 2])
    assert prediction.cam.dtype == np.float32 and prediction.cam.shape == (4, 2)
    assert prediction.cam.base is None  # a copy: it does not keep the batch alive
    assert not prediction.cam.flags.writeable
    np.testing.assert_array_equal(prediction.cam, batch[1, :, :, 2])
    assert Prediction("b.jpg", np.array([0.5, 0.5])).cam is None
    with pytest.raises(ValueError, match="error and a CAM"):
        Prediction("c.jpg", None, error="unreadable", cam=np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"\(h, w\) grid"):
        Prediction("d.jpg", np.array([0.5, 0.5]), cam=np.zeros((2, 2, 2)))
