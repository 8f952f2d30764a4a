"""Honest fills: probes hidden in known pixels, ``method="auto"`` and the calibrated ``sigma`` of every fill."""

import json

import numpy as np
import pytest
import tifffile
from scipy import ndimage as ndi

from napari_inpaint import inpaint, masks
from napari_inpaint.cli import main
from napari_inpaint.engine import FillJob
from napari_inpaint.engine.calibration import Calibration, local_scale
from napari_inpaint.engine.probes import scatter
from napari_inpaint.masks import HOLE_CLASSES, hole_classes


def _field(seed: int, shape=(128, 128), width: float = 4.0, noise: float = 0.05) -> np.ndarray:
    """A smooth random field with some noise: the errors of a fill are random, as on real images."""
    rng = np.random.default_rng(seed)
    smooth = ndi.gaussian_filter(rng.normal(size=shape), width)
    return (smooth / smooth.std() + noise * rng.normal(size=shape)).astype(np.float32)


def test_probes_lie_on_known_pixels_apart_from_each_other_for_random_masks():
    touching = np.ones((3, 3), bool)
    for seed in range(40):
        rng = np.random.default_rng(seed)
        kind = ["strokes", "hot-pixels", "debris", "scratches", "dropped-lines"][seed % 5]
        real = masks.make(kind, (96, 96), float(rng.uniform(0.01, 0.08)), seed=seed)
        kinds = scatter(real, 400, rng)
        probes = kinds > 0
        assert set(np.unique(kinds[probes])) <= set(np.unique(hole_classes(real)))
        assert not (probes & real).any(), (seed, kind)
        assert not probes[:4].any() and not probes[-4:].any() and not probes[:, :4].any() and not probes[:, -4:].any()
        labels, count = ndi.label(probes, structure=touching)
        for k in range(1, count + 1):  # no two copies touch, through faces or corners
            grown = ndi.binary_dilation(labels == k, touching)
            assert not ((labels > 0) & (labels != k) & grown).any(), (seed, kind)
        assert probes.sum() >= 100, (seed, kind, int(probes.sum()))


def test_probes_copy_every_kind_of_hole():
    real = np.zeros((200, 200), bool)
    real[ndi.binary_dilation(np.random.default_rng(1).random((200, 200)) < 0.002)] = True  # small blobs
    real[50, 20:180] = True  # a line
    real[120:150, 100:140] = True  # a large hole
    real[10, 10] = True
    kinds = scatter(real, 1500, np.random.default_rng(0))
    assert set(np.unique(kinds)) == set(np.unique(hole_classes(real)))
    for kind in set(np.unique(kinds)) - {0}:  # each kind in 8 copies at least, a large hole within 4 shares
        assert ndi.label(kinds == kind, structure=np.ones((3, 3)))[1] >= (2 if kind == 4 else 8), kind


def test_calibration_quantiles_grow_with_depth_and_say_when_nothing_fits():
    rng = np.random.default_rng(0)
    distance = rng.uniform(1, 12, 5000)
    errors = np.abs(rng.normal(0, 1, (5000, 1))) * distance[:, None] ** 0.5
    fitted = Calibration.fit(errors, distance, np.ones((5000, 1)))
    assert (np.diff(fitted.quantiles) >= 0).all() and fitted.quantiles[-1] > 2 * fitted.quantiles[0]
    empty = Calibration.fit(errors[:10], distance[:10], np.ones((10, 1)))
    assert np.isnan(empty.quantiles).all() and "sigma is unknown" in empty.provenance["notes"][0]


@pytest.mark.parametrize("method", ["harmonic", "biharmonic", "auto"])
def test_sigma_covers_ninety_percent_of_the_errors_on_random_fields(method):
    errors, sigmas = [], []
    for seed in range(6):
        image = _field(seed)
        mask = masks.make(["debris", "strokes", "hot-pixels"][seed % 3], image.shape, 0.04, seed=seed)
        filled, sigma = inpaint(image, mask, method, return_uncertainty=True, seed=seed)
        errors.append(np.abs(filled - image)[mask])
        sigmas.append(sigma[mask])
    errors, sigmas = np.concatenate(errors), np.concatenate(sigmas)
    coverage = np.mean(errors <= 1.645 * sigmas)
    assert 0.8 <= coverage <= 0.97, coverage


def test_uncertainty_is_nan_where_no_probe_fits():
    image = _field(0, (24, 24))
    mask = np.ones(image.shape, bool)
    mask[::6, ::6] = False  # hardly a known pixel: no copy of the hole fits
    job = FillJob.create(image, mask, "harmonic", uncertainty=True)
    filled, sigma = job.run()
    assert np.isnan(sigma[mask]).all() and (sigma[~mask] == 0).all()
    assert "sigma is unknown" in job.outcome["uncertainty"]["notes"][0]
    np.testing.assert_array_equal(filled[~mask], image[~mask])


def test_auto_keeps_known_pixels_and_dtype_and_records_its_choice():
    image = (1000 + 400 * _field(3)).astype(np.uint16)
    mask = masks.make("hot-pixels", image.shape, 0.01, seed=1) | masks.make("scratches", image.shape, 0.02, seed=2)
    job = FillJob.create(image, mask, "auto")
    filled = job.run()
    assert filled.dtype == np.uint16
    np.testing.assert_array_equal(filled[~mask], image[~mask])
    record = job.outcome["auto"]
    present = {HOLE_CLASSES[k - 1] for k in np.unique(hole_classes(mask)) if k}
    assert set(record["choice"]) == present
    assert set(record["probe_rmse"]) == {"harmonic", "biharmonic", "tv"}
    assert all(record["probe_pixels"][kind] >= 50 for kind in present)


def test_auto_fills_as_well_as_the_best_candidate_where_one_is_exact():
    # A quadratic surface: biharmonic is exact, harmonic is not; auto must find that on its probes.
    yy, xx = np.mgrid[:96, :96] / 96.0
    image = 50 + 40 * xx**2 + 30 * yy**2 - 20 * xx * yy
    mask = masks.make("debris", image.shape, 0.05, seed=4)
    job = FillJob.create(image, mask, "auto", params={"candidates": "harmonic,biharmonic"})
    filled = job.run()
    assert set(job.outcome["auto"]["choice"].values()) == {"biharmonic"}
    np.testing.assert_allclose(filled, inpaint(image, mask, "biharmonic"))


@pytest.mark.parametrize("seed", range(6))
def test_auto_fills_each_kind_of_hole_as_its_method_alone_would(seed):
    # Each method after the first fills only its own holes and those near them: the same values as a fill of
    # every hole, for the diffusions (which read a hole's ring only), on random mixed masks.
    from napari_inpaint.methods import get_method
    from napari_inpaint.methods.auto import Choice, auto

    image = _field(seed, (96, 96)).astype(np.float64)[..., np.newaxis]
    mask = masks.make("hot-pixels", image.shape[:2], 0.02, seed) | masks.make("scratches", image.shape[:2], 0.03, seed)
    mask |= masks.make("debris", image.shape[:2], 0.03, seed)
    mask[60:80, 56:80] = True  # a large hole, and a line
    mask[8, 4:60] = True
    image = np.where(mask[..., np.newaxis], 0.0, image)
    chosen = {"specks": "biharmonic", "lines": "harmonic", "blobs": "biharmonic", "large": "harmonic"}
    filled = auto(image, mask, prepared=Choice(chosen, {}))
    kinds = hole_classes(mask)
    for method in ("harmonic", "biharmonic"):
        own = np.isin(kinds, [i + 1 for i, kind in enumerate(HOLE_CLASSES) if chosen[kind] == method])
        assert own.any()
        alone = get_method(method).fill(image, mask)
        np.testing.assert_allclose(filled[own], alone[own], rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(filled[~mask], image[~mask])


def test_auto_fills_volumes_and_chooses_plane_by_plane_fills_too():
    volume = np.stack([_field(s, (48, 48)) for s in range(12)])
    volume = ndi.gaussian_filter(volume, (1.5, 0, 0))
    mask = np.zeros(volume.shape, bool)
    mask[4:7, 20:26, 10:30] = True
    mask[9, 5, 5] = True
    job = FillJob.create(volume, mask, "auto", spatial_ndim=3)
    filled, sigma = job.run(), None
    np.testing.assert_array_equal(filled[~mask], volume[~mask])
    assert set(job.outcome["auto"]["probe_rmse"]) == {"harmonic", "biharmonic", "biharmonic:2d", "guided:adjacent"}
    assert sigma is None and np.isfinite(filled).all()


def test_auto_refuses_candidates_it_cannot_use():
    image, mask = _field(0, (32, 32)), np.zeros((32, 32), bool)
    mask[10:12, 10:12] = True
    with pytest.raises(ValueError, match="auto cannot choose 'learned'"):
        inpaint(image, mask, "auto", candidates="harmonic,learned")
    with pytest.raises(ValueError, match="auto cannot use 'guided' without reference"):
        inpaint(image, mask, "auto", candidates="guided")
    with pytest.raises(ValueError, match="NAME:2d is for volumes"):
        inpaint(image, mask, "auto", candidates="biharmonic:2d")


def test_cli_writes_the_uncertainty_beside_the_output_with_its_calibration(tmp_path, capsys):
    image = (1000 + 400 * _field(5)).astype(np.uint16)
    mask = masks.make("debris", image.shape, 0.03, seed=5)
    tifffile.imwrite(tmp_path / "image.tif", image)
    tifffile.imwrite(tmp_path / "mask.tif", mask.astype(np.uint8) * 255)
    arguments = ["fill", str(tmp_path / "image.tif"), "--mask", str(tmp_path / "mask.tif"), "--method", "auto",
                 "--uncertainty", "-o", str(tmp_path / "filled.tif")]  # fmt: skip
    assert main(arguments) == 0
    expected, sigma = inpaint(image, mask, "auto", return_uncertainty=True)
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "filled.tif"), expected)
    with tifffile.TiffFile(tmp_path / "filled.sigma.tif") as written:
        np.testing.assert_array_equal(written.asarray(), sigma)
        record = json.loads(written.pages[0].description)["napari_inpaint"]
    assert record["sigma_of"] == "filled.tif" and record["uncertainty"]["probe_pixels"] > 100
    assert set(record["auto"]["choice"]) <= set(HOLE_CLASSES)
    capsys.readouterr()
    assert main(arguments) == 2  # nothing overwritten unasked: the image and its sigma exist
    assert "exists" in capsys.readouterr().err


def test_inpaint_layer_adds_the_sigma_over_the_source(qtbot):
    pytest.importorskip("napari")
    from napari.components import ViewerModel

    from napari_inpaint import inpaint_layer
    from napari_inpaint.napari.layers import SIGMA_SUFFIX

    viewer = ViewerModel()
    image = _field(6)
    mask = masks.make("strokes", image.shape, 0.04, seed=6)
    viewer.add_image(image, name="field", scale=(0.5, 0.5), translate=(3, 4))
    viewer.add_labels(mask.astype(np.uint8), name="holes")
    inpaint_layer(viewer, "field", "holes", "auto", uncertainty=True)
    expected, sigma = inpaint(image, mask, "auto", return_uncertainty=True)
    np.testing.assert_array_equal(viewer.layers["field inpainted"].data, expected)
    shown = viewer.layers["field" + SIGMA_SUFFIX]
    np.testing.assert_array_equal(shown.data, sigma)
    assert tuple(shown.scale) == (0.5, 0.5) and tuple(shown.translate) == (3, 4)
    assert shown.colormap.name == "magma"


def test_the_inpaint_widget_shows_the_uncertainty_and_what_auto_chose(qtbot):
    pytest.importorskip("pytestqt")
    from napari.components import ViewerModel

    from napari_inpaint.napari.layers import SIGMA_SUFFIX
    from napari_inpaint.napari.widgets import InpaintWidget

    viewer = ViewerModel()
    image = _field(7)
    mask = masks.make("hot-pixels", image.shape, 0.01, seed=7)
    viewer.add_image(image, name="field")
    viewer.add_labels(mask.astype(np.uint8), name="holes")
    widget = InpaintWidget(viewer)
    widget.image.value, widget.mask.value = viewer.layers["field"], viewer.layers["holes"]
    widget.method.value = "auto"
    widget.uncertainty.value = True
    widget.run()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=60_000)
    expected, sigma = inpaint(image, mask, "auto", return_uncertainty=True)
    np.testing.assert_array_equal(viewer.layers["field inpainted"].data, expected)
    np.testing.assert_array_equal(viewer.layers["field" + SIGMA_SUFFIX].data, sigma)
    assert "auto chose specks → " in widget.status.value and "probe pixels" in widget.status.value


def test_probes_of_a_hole_across_a_volume_cross_it_too():
    # A hot pixel bad in every plane is a column through the whole volume: its copies must span it as well
    # (else none fits, and auto keeps its first candidate blind).
    real = np.zeros((12, 40, 40), bool)
    real[:, 10, 10] = real[:, 25, 30] = True
    kinds = scatter(real, 120, np.random.default_rng(0), piece=24)
    labels, count = ndi.label(kinds > 0, structure=np.ones((3, 3, 3)))
    assert count >= 6 and not (kinds > 0)[real].any()
    for k in range(1, count + 1):
        assert ((labels == k).sum(axis=0) == 12).sum() == 1  # one column, through every plane


def _moving_stack(planes: int = 12, side: int = 64) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A textured field drifting by (0.7, -0.4) pixel per plane, with noise (uint16), its truth, and debris
    different in every plane."""
    rng = np.random.default_rng(0)
    field = ndi.gaussian_filter(rng.normal(size=(2 * side, 2 * side)), 1.5)
    truth = 1000 + 200 * np.stack([
        ndi.shift(field / field.std(), (0.7 * z, -0.4 * z), order=3, mode="wrap")[16 : 16 + side, 16 : 16 + side]
        for z in range(planes)
    ])
    stack = (truth + rng.normal(0, 5, truth.shape)).astype(np.uint16)
    mask = np.stack([masks.make("debris", (side, side), 0.04, seed=z) for z in range(planes)])
    return stack, truth, mask


def test_auto_on_a_volume_fills_debris_of_moving_frames_from_the_adjacent_planes():
    # Debris on a drifting texture: neither 2D nor 3D diffusion knows what it hides, the neighbouring frames
    # (aligned) do; auto in 3D must see that on its probes and fill as well as guided with reference='adjacent'.
    stack, truth, mask = _moving_stack()
    job = FillJob.create(stack, mask, "auto", spatial_ndim=3)
    filled = job.run()
    assert filled.dtype == np.uint16
    np.testing.assert_array_equal(filled[~mask], stack[~mask])
    assert set(job.outcome["auto"]["choice"].values()) == {"guided:adjacent"}

    def psnr(values):
        return 10 * np.log10(np.ptp(truth) ** 2 / np.mean((values[mask] - truth[mask]) ** 2))

    guided = inpaint(stack, mask, "guided", reference="adjacent")
    biharmonic = inpaint(stack, mask, "biharmonic", spatial_ndim=3)
    assert psnr(filled) > psnr(guided) - 0.5, (psnr(filled), psnr(guided))
    assert psnr(filled) > psnr(biharmonic) + 10


def test_auto_names_plane_by_plane_candidates_only_for_volumes_and_adjacent_only_with_a_reference_taker():
    volume, mask = _field(0, (6, 16, 16)), np.zeros((6, 16, 16), bool)
    mask[2, 5:8, 5:8] = True
    with pytest.raises(ValueError, match="auto cannot use 'harmonic:adjacent': harmonic takes no reference"):
        inpaint(volume, mask, "auto", spatial_ndim=3, candidates="harmonic,harmonic:adjacent")
    with pytest.raises(ValueError, match="NAME:2d and NAME:adjacent are the ways"):
        inpaint(volume, mask, "auto", spatial_ndim=3, candidates="harmonic,guided:3d")
    with pytest.raises(ValueError, match="NAME:2d is for volumes"):
        inpaint(volume[2], mask[2], "auto", candidates="harmonic,guided:adjacent")
    filled = inpaint(volume, mask, "auto", spatial_ndim=3, candidates="guided:adjacent")  # no reference needed
    np.testing.assert_array_equal(filled[~mask], volume[~mask])
    assert np.isfinite(filled).all()


def test_local_scale_is_smooth_across_a_large_hole():
    """Deep in a hole the scale averages the rim's (it was the nearest known pixel's: rays across the hole)."""
    rng = np.random.default_rng(0)
    values = rng.standard_normal((120, 120, 1))
    values[:, 60:] *= 3.0  # the right half varies three times as much
    yy, xx = np.mgrid[:120, :120]
    hole = (yy - 60) ** 2 + (xx - 60) ** 2 < 40**2
    distance, scale = local_scale(values, hole)
    centre = scale[60, 60, 0]
    assert 1.6 < centre < 2.4  # between the halves' spreads (about 1 and 3), not either of them
    row = scale[60, 25:96, 0]  # across the hole: no jumps between neighbours
    assert np.abs(np.diff(row)).max() < 0.15
    assert distance[60, 60] > 39
