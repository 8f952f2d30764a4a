"""Planning at scale: holes labelled cell by cell, each filled once, long thin holes split, bounded memory."""

import tracemalloc

import numpy as np
import pytest
from scipy import ndimage as ndi

import napari_inpaint.engine.planning as planning
from napari_inpaint import get_method, inpaint, list_methods
from napari_inpaint.engine.planning import find_holes, windows


def _random_mask(rng, shape) -> np.ndarray:
    mask = rng.random(shape) > rng.uniform(0.95, 0.995)
    return ndi.binary_dilation(mask, iterations=int(rng.integers(0, 3)))


@pytest.mark.parametrize("ndim", [2, 3])
def test_holes_are_labelled_across_cell_borders(ndim):
    rng = np.random.default_rng(ndim)
    for _ in range(30):
        shape = tuple(rng.integers(5, 60 if ndim == 2 else 20, ndim))
        mask = _random_mask(rng, shape)
        cell = tuple(rng.integers(2, 17, ndim))
        found = find_holes(mask.__getitem__, shape, cell)
        labels, count = ndi.label(mask, np.ones((3,) * ndim))
        objects = ndi.find_objects(labels)
        boxes = sorted((tuple(s.start for s in o), tuple(s.stop for s in o)) for o in objects)
        assert sorted(zip(map(tuple, found.starts.tolist()), map(tuple, found.stops.tolist()))) == boxes
        first = [np.flatnonzero(labels.ravel() == k)[0] for k in range(1, count + 1)]
        assert sorted(found.anchors.tolist()) == sorted(first) and found.pixels == mask.sum()


@pytest.mark.parametrize("ndim", [2, 3])
def test_each_hole_lists_the_cells_it_touches(ndim):
    rng = np.random.default_rng(10 + ndim)
    for _ in range(30):
        shape = tuple(rng.integers(5, 60 if ndim == 2 else 20, ndim))
        mask = _random_mask(rng, shape)
        cell = tuple(rng.integers(2, 70 if ndim == 2 else 25, ndim))  # one cell for the whole mask, or many
        found = find_holes(mask.__getitem__, shape, cell)
        labels, count = ndi.label(mask, np.ones((3,) * ndim))
        grid = tuple(-(-n // c) for n, c in zip(shape, cell))
        cell_of = np.ravel_multi_index(tuple(np.indices(shape)[a] // cell[a] for a in range(ndim)), grid)
        by_anchor = {int(np.flatnonzero(labels.ravel() == k)[0]): k for k in range(1, count + 1)}
        for hole, anchor in enumerate(found.anchors.tolist()):
            expected = np.unique(cell_of[labels == by_anchor[anchor]])
            np.testing.assert_array_equal(found.cells_of(hole), expected)


@pytest.mark.parametrize("split", [False, True])
def test_every_hole_is_filled_exactly_once_with_its_margin(monkeypatch, split):
    monkeypatch.setattr(planning, "_CROP_PIXELS", {2: 300, 3: 500})  # merges stop early, long holes split
    rng = np.random.default_rng(1)
    for trial in range(60):
        ndim = 2 if trial % 3 else 3
        shape = tuple(rng.integers(20, 80 if ndim == 2 else 30, ndim))
        mask = _random_mask(rng, shape)
        mask[(slice(None),) * (ndim - 1) + (shape[-1] // 2,)] = True  # a seam across
        cell, margin = tuple(rng.integers(4, 17, ndim)), int(rng.integers(0, 4))
        covered = np.zeros(shape, int)
        found = find_holes(mask.__getitem__, shape, cell)
        for window in windows(found, mask.__getitem__, shape, margin, cell, split):
            crop = window.crop(mask)
            covered[crop.box] += crop.holes
            # Each filled pixel has its margin of context in the crop (or the image ends there).
            at_image_border = [(s.start == 0, s.stop == n) for s, n in zip(crop.box, shape)]
            for axis, (low, high) in enumerate(at_image_border):
                near = np.zeros(crop.holes.shape, bool)
                if not low:
                    near[(slice(None),) * axis + (slice(0, margin),)] = True
                if not high:
                    near[(slice(None),) * axis + (slice(crop.holes.shape[axis] - margin, None),)] = True
                assert not (crop.holes & near).any()
        np.testing.assert_array_equal(covered, mask)


def _seams(size: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[:size, :size] / size
    image = np.sin(6 * yy) * np.cos(5 * xx) * 1000 + 2000
    mask = np.zeros(image.shape, bool)
    mask[:, size // 2 : size // 2 + 3] = True  # a stitching seam and a dead row, crossing
    mask[size // 3, :] = True
    return image, mask


def test_long_thin_holes_are_split_into_pieces_for_local_methods(monkeypatch, register_method):
    seen = []

    @register_method("record-local", margin=1, local_fill=True)
    def record(image, mask):
        seen.append(mask.shape)
        return np.zeros_like(image)

    image, mask = _seams(600)
    whole = inpaint(image, mask, "harmonic")
    monkeypatch.setattr(planning, "_CROP_PIXELS", {2: 128**2, 3: 32**3})
    monkeypatch.setattr(planning, "CELL", {2: 128, 3: 32})
    inpaint(image, mask, "record-local", clip=False)
    # Pieces of a cell with an overlap of 8 seam widths (the crossing is 2.3 pixels deep) and the margin.
    assert len(seen) > 4 and max(max(s) for s in seen) <= 128 + 2 * (37 + 1)
    pieces = inpaint(image, mask, "harmonic")
    np.testing.assert_allclose(pieces, whole, rtol=0, atol=1e-8)  # the cut is forgotten within the overlap
    np.testing.assert_array_equal(pieces[~mask], image[~mask])


def test_thick_holes_and_non_local_methods_stay_whole(monkeypatch, register_method):
    seen = []

    @register_method("record-whole", margin=1)  # local_fill defaults to False
    def record(image, mask):
        seen.append(mask.shape)
        return np.zeros_like(image)

    image, mask = _seams(300)
    monkeypatch.setattr(planning, "_CROP_PIXELS", {2: 64**2, 3: 16**3})
    monkeypatch.setattr(planning, "CELL", {2: 64, 3: 16})
    inpaint(image, mask, "record-whole", clip=False)
    assert seen == [(300, 300)]
    thick = mask.copy()
    thick[100:140, 100:140] = True  # a blob 40 pixels across on the seam: not thin
    found = find_holes(lambda box: thick[box], thick.shape, (64, 64))
    planned = windows(found, lambda box: thick[box], thick.shape, 1, (64, 64), split=True)
    assert [w.box for w in planned] == [(slice(0, 300), slice(0, 300))]


def test_registry_says_which_methods_fill_locally():
    assert not get_method("interpolate").local_fill  # reaches the nearest known pixel, however far
    assert {m.name for m in list_methods() if m.local_fill} >= {"harmonic", "biharmonic", "tv", "telea"}
    assert get_method("harmonic").describe()["local_fill"] is True


def test_one_call_adds_at_most_three_images_of_memory():
    rng = np.random.default_rng(0)
    size = 2048
    image = rng.integers(100, 4000, (size, size), dtype=np.uint16)
    mask = np.zeros(image.shape, bool)
    for y, x in rng.integers(20, size - 20, (100, 2)):
        mask[y : y + rng.integers(1, 12), x : x + rng.integers(1, 12)] = True
    inpaint(image[:64, :64], mask[:64, :64], "biharmonic")  # imports and caches first
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        out = inpaint(image, mask, "biharmonic")
        added = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    assert added <= 3 * image.nbytes, f"{added / image.nbytes:.1f} images"
    np.testing.assert_array_equal(out[~mask], image[~mask])
