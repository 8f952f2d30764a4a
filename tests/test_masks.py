import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_inpaint import masks
from napari_inpaint.registry import ARTIFACTS

SHAPE = (96, 128)
GENERATORS = {
    "hot_pixels": lambda seed: masks.hot_pixels(SHAPE, 0.01, seed=seed),
    "scratch": lambda seed: masks.scratch(SHAPE, 3, seed=seed),
    "debris": lambda seed: masks.debris(SHAPE, 10, seed=seed),
    "strokes": lambda seed: masks.strokes(SHAPE, 0.15, seed=seed),
    "dropped_lines": lambda seed: masks.dropped_lines(SHAPE, 4, axis=1, seed=seed),
}


@pytest.mark.parametrize("name", GENERATORS)
def test_generators_are_seeded_bool_masks_of_the_shape(name):
    make = GENERATORS[name]
    mask = make(0)
    assert mask.dtype == bool and mask.shape == SHAPE
    assert 0 < mask.sum() < mask.size
    np.testing.assert_array_equal(make(0), mask)
    np.testing.assert_array_equal(make(np.random.default_rng(0)), mask)  # a Generator seeds too
    assert not np.array_equal(make(1), mask)


def test_hot_pixels_count_is_exact_in_any_dimension():
    mask = masks.hot_pixels((8, 20, 30), 0.05, seed=3)
    assert mask.shape == (8, 20, 30) and mask.sum() == 240


@pytest.mark.parametrize("seed", range(12))
def test_scratch_crosses_the_image_as_one_thin_line(seed):
    mask = masks.scratch(SHAPE, 1, seed=seed)
    assert ndi.label(mask, structure=np.ones((3, 3)))[1] == 1
    crosses_rows = mask[0].any() and mask[-1].any()
    crosses_columns = mask[:, 0].any() and mask[:, -1].any()
    assert crosses_rows or crosses_columns
    # A 1-pixel line has about one pixel per step along its longer direction.
    assert mask.sum() < 2.5 * max(SHAPE)


def test_scratch_width_scales_its_area():
    thin, wide = masks.scratch(SHAPE, 1, seed=2), masks.scratch(SHAPE, 5, seed=2)
    assert (thin <= wide).all()
    assert 3.5 < wide.sum() / thin.sum() < 6.5


@pytest.mark.parametrize("seed", range(6))
def test_debris_is_one_compact_blob_of_the_radius(seed):
    radius = 9
    mask = masks.debris(SHAPE, radius, seed=seed)
    assert ndi.label(mask)[1] == 1
    assert 0.6 < mask.sum() / (np.pi * radius**2) < 1.5
    rows, cols = np.nonzero(mask)
    assert np.ptp(rows) <= 2.9 * radius and np.ptp(cols) <= 2.9 * radius  # radius stays within 1.45 R
    assert mask[ndi.binary_erosion(mask, iterations=2)].any()  # a blob, not a line


def test_debris_at_a_given_center():
    mask = masks.debris(SHAPE, 5, seed=0, center=(20, 100))
    cy, cx = ndi.center_of_mass(mask)
    assert abs(cy - 20) < 2 and abs(cx - 100) < 2


@pytest.mark.parametrize(
    ("shape", "ratio", "seed"), [((128, 128), 0.05, 0), ((128, 128), 0.3, 1), ((64, 120), 0.2, 2)]
)
def test_strokes_reach_the_target_ratio(shape, ratio, seed):
    mask = masks.strokes(shape, ratio, seed=seed)
    assert mask.sum() == round(ratio * mask.size)


def test_strokes_of_zero_ratio_are_empty():
    assert not masks.strokes((32, 32), 0.0).any()


def test_dropped_lines_drop_whole_lines_along_the_axis():
    rows = masks.dropped_lines((20, 30), 3, axis=0, seed=5)
    assert rows.all(axis=1).sum() == 3 and rows.sum() == 90
    frames = masks.dropped_lines((10, 8, 8), 2, axis=0, seed=5)
    assert frames.all(axis=(1, 2)).sum() == 2 and frames.sum() == 128
    columns = masks.dropped_lines((20, 30), 4, axis=-1, seed=5)
    assert columns.all(axis=0).sum() == 4 and columns.sum() == 80


def test_dilate_grows_by_a_euclidean_radius():
    mask = np.zeros((21, 21), bool)
    mask[10, 10] = True
    grown = masks.dilate(mask, 3)
    yy, xx = np.mgrid[:21, :21]
    np.testing.assert_array_equal(grown, (yy - 10) ** 2 + (xx - 10) ** 2 <= 9)
    np.testing.assert_array_equal(masks.dilate(mask, 0), mask)
    assert not masks.dilate(np.zeros((4, 4, 4), bool), 2).any()
    volume = np.zeros((9, 9, 9), bool)
    volume[4, 4, 4] = True
    assert masks.dilate(volume, 1).sum() == 7


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: masks.hot_pixels((8, 8), 1.0), "fraction"),
        (lambda: masks.strokes((8, 8), -0.1), "ratio"),
        (lambda: masks.scratch((8, 8, 8), 1), "2 dimensions"),
        (lambda: masks.scratch((8, 8), 0), "width"),
        (lambda: masks.debris((8, 8), -1), "radius"),
        (lambda: masks.dropped_lines((8, 8), 8), "n must"),
        (lambda: masks.dropped_lines((8, 8), 1, axis=2), "axis"),
        (lambda: masks.dilate(np.ones((3, 3), bool), -1), "pixels"),
        (lambda: masks.hot_pixels((0, 8), 0.1), "positive"),
    ],
)
def test_bad_arguments_raise_clearly(call, message):
    with pytest.raises(ValueError, match=message):
        call()


RATIO_KINDS = ["strokes", "rectangles", "hot-pixels", "scratches", "debris", "dropped-lines"]


def test_make_offers_every_kind():
    assert list(masks.KINDS) == RATIO_KINDS


def test_every_kind_is_a_damage_of_the_registry_or_a_generic_hole_shape():
    damage = [kind for kind in masks.KINDS if kind not in masks.HOLE_SHAPES]
    assert set(damage) <= set(ARTIFACTS)
    assert set(masks.HOLE_SHAPES) <= set(masks.KINDS) and not set(masks.HOLE_SHAPES) & set(ARTIFACTS)


def test_an_unknown_kind_is_refused_listing_the_kinds():
    with pytest.raises(ValueError, match=r"unknown mask kind 'scan-lines'; choose from strokes, .*, dropped-lines"):
        masks.make("scan-lines", SHAPE, 0.1)


@pytest.mark.parametrize("kind", RATIO_KINDS)
@pytest.mark.parametrize("ratio", [0.05, 0.15, 0.25])
def test_every_kind_reaches_its_ratio_and_is_seeded(kind, ratio):
    mask = masks.make(kind, SHAPE, ratio, seed=4)
    assert mask.dtype == bool and mask.shape == SHAPE
    if kind == "dropped-lines":  # whole lines: the ratio is rounded to a number of rows
        assert mask.all(axis=1).sum() == round(ratio * SHAPE[0]) == mask.sum() / SHAPE[1]
    else:
        assert mask.sum() == round(ratio * mask.size)
    np.testing.assert_array_equal(masks.make(kind.replace("-", "_"), SHAPE, ratio, seed=4), mask)
    assert not np.array_equal(masks.make(kind, SHAPE, ratio, seed=5), mask)


def test_existing_signatures_still_work_positionally():
    assert masks.hot_pixels(SHAPE, 0.01, 3).sum() == round(0.01 * SHAPE[0] * SHAPE[1])
    assert masks.scratch(SHAPE, 2, 3).any()
    assert masks.debris(SHAPE, 6, 3, None).any() and masks.debris(SHAPE, 6, 3, (40, 40))[40, 40]
    assert masks.strokes(SHAPE, 0.1, 3).any()
    assert masks.dropped_lines(SHAPE, 5, 1, 3).all(axis=0).sum() == 5


def test_ratio_keywords_of_the_single_shape_generators():
    assert masks.hot_pixels(SHAPE, ratio=0.02, seed=1).sum() == round(0.02 * SHAPE[0] * SHAPE[1])
    assert masks.dropped_lines((50, 8), ratio=0.1, axis=0, seed=1).all(axis=1).sum() == 5
    lines = masks.scratch(SHAPE, 2, seed=1, ratio=0.1)
    assert lines.sum() == round(0.1 * lines.size)
    assert ndi.binary_erosion(lines, iterations=2).sum() < 0.05 * lines.sum()  # thin lines, however many
    blobs = masks.debris(SHAPE, 5, seed=1, ratio=0.1)
    assert blobs.sum() == round(0.1 * blobs.size)
    # Blobs of radius 5 cover about 80 pixels each: many of them, compact (few boundary pixels).
    assert ndi.label(blobs)[1] >= 5
    assert (blobs & ~ndi.binary_erosion(blobs)).sum() < 0.6 * blobs.sum()


def test_rectangles_are_boxes():
    mask = masks.rectangles((64, 64), 0.02, seed=0)  # smaller than one box of at least 6 x 6
    _labels, count = ndi.label(mask)
    assert count == 1
    rows, cols = np.nonzero(mask)
    box = mask[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    assert box[:-1].all()  # complete rows; the last one may be partial


def test_strokes_are_deepfill_like_brush_lines():
    shape = (256, 256)
    mask = masks.strokes(shape, 0.2, seed=0)
    # Brush widths are 12 to 40 pixels on a 256 x 256 image: an erosion by 5 keeps most of the strokes ...
    assert ndi.binary_erosion(mask, iterations=5).sum() > 0.3 * mask.sum()
    # ... but they are lines, not blobs: each component is far longer than it is wide.
    labels, _count = ndi.label(mask)
    for box in ndi.find_objects(labels):
        extent = max(s.stop - s.start for s in box)
        assert extent > 25


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: masks.hot_pixels(SHAPE), TypeError, "either fraction or ratio"),
        (lambda: masks.hot_pixels(SHAPE, 0.1, ratio=0.1), TypeError, "either"),
        (lambda: masks.dropped_lines(SHAPE), TypeError, "either n or ratio"),
        (lambda: masks.debris(SHAPE), TypeError, "radius"),
        (lambda: masks.debris(SHAPE, 5, center=(9, 9), ratio=0.1), ValueError, "center"),
        (lambda: masks.rectangles(SHAPE, 1.0), ValueError, "ratio"),
        (lambda: masks.scratch(SHAPE, 2, ratio=-0.1), ValueError, "ratio"),
        (lambda: masks.make("blobs", SHAPE, 0.1), ValueError, "unknown mask kind 'blobs'"),
    ],
)
def test_bad_ratio_arguments_raise_clearly(call, error, message):
    with pytest.raises(error, match=message):
        call()
