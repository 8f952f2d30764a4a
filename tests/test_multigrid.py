"""The solvers of the diffusion fills agree: multigrid, banded Cholesky and sparse LU give the same fill."""

import numpy as np
import pytest
import scipy.sparse.linalg as spla
from scipy import ndimage as ndi

from napari_inpaint import inpaint, masks
from napari_inpaint.methods import diffusion


def _direct_only(monkeypatch):
    monkeypatch.setattr(diffusion, "_MULTIGRID_ABOVE", {k: dict.fromkeys(v, 10**12)
                                                       for k, v in diffusion._MULTIGRID_ABOVE.items()})


def _no_band(monkeypatch):
    monkeypatch.setattr(diffusion, "_BAND_WIDTH", -1)
    monkeypatch.setattr(diffusion, "_BIHARMONIC_BAND_WIDTH", -1)


def _multigrid_only(monkeypatch):
    _no_band(monkeypatch)
    monkeypatch.setattr(diffusion, "_MULTIGRID_ABOVE", {k: dict.fromkeys(v, 1)
                                                       for k, v in diffusion._MULTIGRID_ABOVE.items()})


def _random_holes(shape: tuple[int, ...], seed: int) -> np.ndarray:
    """Blobs, strokes and specks of random sizes; in 3D, random blobs."""
    rng = np.random.default_rng(seed)
    if len(shape) == 2:
        kinds = rng.choice(["debris", "strokes", "scratches", "hot-pixels"], size=2, replace=False)
        return masks.make(kinds[0], shape, rng.uniform(0.02, 0.1), seed) | masks.make(
            kinds[1], shape, rng.uniform(0.01, 0.05), seed + 1
        )
    noise = ndi.gaussian_filter(rng.standard_normal(shape), rng.uniform(1.5, 4))
    return noise > np.quantile(noise, 1 - rng.uniform(0.05, 0.3))


def _image(shape: tuple[int, ...], dtype, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    smooth = ndi.gaussian_filter(rng.standard_normal(shape), 3)
    smooth = (smooth - smooth.min()) / np.ptp(smooth)
    if np.issubdtype(dtype, np.integer):
        return np.rint(1000 + smooth * 60000).astype(dtype)
    return (smooth * 3 - 1).astype(dtype)


@pytest.mark.parametrize("method", ["harmonic", "biharmonic"])
@pytest.mark.parametrize(("shape", "dtype"), [((96, 96), np.uint16), ((96, 96), np.float32),
                                              ((24, 24, 24), np.uint16), ((24, 24, 24), np.float64)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_multigrid_gives_the_direct_solve_fill(method, shape, dtype, seed, monkeypatch):
    image = _image(shape, dtype, seed)
    mask = _random_holes(shape, seed)
    spatial = len(shape)
    _direct_only(monkeypatch)
    direct = inpaint(image.astype(np.float64), mask, method, spatial_ndim=spatial, clip=False)
    direct_typed = inpaint(image, mask, method, spatial_ndim=spatial)
    _multigrid_only(monkeypatch)
    iterative = inpaint(image.astype(np.float64), mask, method, spatial_ndim=spatial, clip=False)
    iterative_typed = inpaint(image, mask, method, spatial_ndim=spatial)
    span = float(np.ptp(image))
    # Far below a grey level of 16 bits (1.5e-5 of the range).
    assert np.abs(iterative - direct).max() < 1e-7 * span
    np.testing.assert_array_equal(iterative_typed[~mask], image[~mask])
    if np.issubdtype(dtype, np.integer):  # rounding may differ where a value lies on .5
        assert np.abs(iterative_typed.astype(np.int64) - direct_typed.astype(np.int64)).max() <= 1
    else:
        np.testing.assert_allclose(iterative_typed, direct_typed, rtol=0, atol=1e-6 * span)


@pytest.mark.parametrize("method", ["harmonic", "biharmonic"])
def test_banded_cholesky_gives_the_sparse_lu_fill(method, monkeypatch):
    image = _image((128, 128), np.float64, 4)
    mask = masks.make("strokes", image.shape, 0.04, 4) | masks.make("hot-pixels", image.shape, 0.01, 5)
    _direct_only(monkeypatch)
    banded = inpaint(image, mask, method, clip=False)
    _no_band(monkeypatch)
    lu = inpaint(image, mask, method, clip=False)
    np.testing.assert_allclose(banded, lu, rtol=0, atol=1e-9 * np.ptp(image))


def test_a_large_hole_is_solved_by_multigrid_exactly_for_its_polynomials():
    """A disc of 15,000 pixels (its band too wide to factorise) takes the multigrid path (without CHOLMOD);
    ramps and quadratics stay exact."""
    yy, xx = np.mgrid[:180, :180].astype(float)
    ramp = 2.0 * yy - 0.5 * xx + 3
    quadratic = 0.01 * (yy - 70) ** 2 - 0.02 * (xx - 90) ** 2 + 0.005 * xx * yy
    mask = (yy - 90) ** 2 + (xx - 90) ** 2 < 70**2
    assert mask.sum() > max(diffusion._MULTIGRID_ABOVE["superlu"][2, order] for order in (1, 2))
    np.testing.assert_allclose(inpaint(ramp, mask, "harmonic", clip=False), ramp, atol=1e-6)
    np.testing.assert_allclose(inpaint(quadratic, mask, "biharmonic", clip=False), quadratic, atol=1e-5)


def test_the_hierarchy_converges_in_few_iterations():
    """The preconditioner works: a disc of radius 100 needs tens of iterations, not hundreds."""
    from napari_inpaint.methods._multigrid import Hierarchy

    mask = np.zeros((216, 216), bool)
    yy, xx = np.mgrid[:216, :216]
    mask[(yy - 108) ** 2 + (xx - 108) ** 2 < 100**2] = True
    image = _image(mask.shape, np.float64, 7)[..., np.newaxis]
    for order, most in ((1, 15), (2, 30)):
        system = diffusion._system(mask, order)
        assembly = diffusion._assemble(system, image, matrix=False)
        rhs = assembly.rhs
        numbers = np.where(system.roles >= 0, system.roles, -1)
        hierarchy = Hierarchy(numbers, system.at, assembly.degree, order, system.offsets, system.kinds)
        iterations = []
        solution = hierarchy.solve(rhs.copy(), lambda: iterations.append(1))  # noqa: B023
        assert len(iterations) <= most
        assert np.linalg.norm(hierarchy.multiply(solution[:, 0]) - rhs[:, 0]) <= 1e-9 * np.linalg.norm(rhs)


@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.parametrize("shape", [(90, 110), (20, 22, 24)])
def test_the_preconditioner_is_symmetric(order, shape):
    """Conjugate gradients need a symmetric preconditioner: the V-cycle's single-precision coarse matrices are
    symmetrised, so <M x, y> = <x, M y> up to rounding."""
    from napari_inpaint.methods._multigrid import Hierarchy

    mask = _random_holes(shape, 3) | np.pad(np.ones(tuple(n - 8 for n in shape), bool), 4)
    system = diffusion._system(mask, order)
    degree = diffusion._assemble(system, np.zeros(mask.shape + (1,)), matrix=False).degree
    numbers = np.where(system.roles >= 0, system.roles, -1)
    hierarchy = Hierarchy(numbers, system.at, degree, order, system.offsets, system.kinds)
    assert len(hierarchy.levels) > 2
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((2, system.hole.size))
    mx, my = (hierarchy.cycle(v, np.empty_like(v)) for v in (x, y))
    assert abs(mx @ y - x @ my) <= 1e-12 * np.linalg.norm(mx) * np.linalg.norm(y)


@pytest.mark.parametrize("seed", range(12))
def test_a_hole_too_wide_for_a_band_has_no_narrow_band(seed):
    """The band test is skipped only where it could not succeed: its matrix's band is wider than allowed."""
    rng = np.random.default_rng(seed)
    widest = int(rng.integers(4, 12))
    ndim = 2 if seed % 3 else 3
    shape = (48, 56) if ndim == 2 else (20, 22, 24)
    mask = _random_holes(shape, seed) | (ndi.gaussian_filter(rng.standard_normal(shape), 4) > 0.05)
    wide = diffusion._too_wide_for_a_band(mask, widest)
    for order in (1, 2):
        matrix = diffusion._assemble(diffusion._system(mask, order), np.zeros(shape + (1,)), matrix=True).matrix
        if wide:
            assert diffusion._banded(matrix, widest) is None


def test_a_thick_hole_among_many_isolated_pixels_is_factorised_when_its_own_pixels_are_few(monkeypatch):
    """Holes counted with their isolated pixels pass the multigrid limit, the coupled ones alone do not: the
    system is then assembled with its matrix after all and factorised (the same fill as multigrid's)."""
    image = _image((200, 200), np.float64, 8)
    mask = np.zeros(image.shape, bool)
    mask[20:143, 20:143] = True  # 123² coupled pixels: wider than any band
    mask[160::2, ::2] = True  # 2,000 isolated pixels
    coupled = 123**2
    multigrid = inpaint(image, mask, "harmonic", clip=False)
    monkeypatch.setattr(diffusion, "_MULTIGRID_ABOVE", {k: dict.fromkeys(v, coupled + 1000)
                                                       for k, v in diffusion._MULTIGRID_ABOVE.items()})
    calls = []
    monkeypatch.setattr(diffusion, "_direct", lambda matrix: calls.append(matrix.shape) or spla.factorized(
        matrix.tocsc()))
    factorised = inpaint(image, mask, "harmonic", clip=False)
    assert calls == [(coupled, coupled)]
    np.testing.assert_allclose(factorised, multigrid, rtol=0, atol=1e-7 * np.ptp(image))


def test_a_biharmonic_band_wider_than_harmonics_is_factorised_as_a_band(monkeypatch):
    """A 70-pixel strip: its biharmonic band (142 wide) is over harmonic's limit and within biharmonic's, so it
    is factorised as a band, with sparse LU's fill."""
    image = _image((90, 220), np.float64, 9)
    mask = np.zeros(image.shape, bool)
    mask[10:80, 10:210] = True
    factorised = []
    banded = diffusion._banded

    def spy(matrix, widest):
        solve = banded(matrix, widest)
        factorised.append((widest, solve is not None))
        return solve

    monkeypatch.setattr(diffusion, "_banded", spy)
    calls = []
    monkeypatch.setattr(diffusion, "_direct", lambda matrix: calls.append(1) or spla.factorized(matrix.tocsc()))
    band = inpaint(image, mask, "biharmonic", clip=False)
    assert factorised == [(diffusion._BIHARMONIC_BAND_WIDTH, True)] and not calls
    _direct_only(monkeypatch)
    _no_band(monkeypatch)
    lu = inpaint(image, mask, "biharmonic", clip=False)
    assert calls
    np.testing.assert_allclose(band, lu, rtol=0, atol=1e-9 * np.ptp(image))
