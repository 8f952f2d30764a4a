"""The engine: one fill job, planned into units and run by an executor (in memory, or a dask graph).

:func:`inpaint` is the whole engine in one call: it builds a
:class:`FillJob` (:mod:`~napari_inpaint.engine.job`) and runs it.  The
pieces, in the order a fill visits them: :mod:`~napari_inpaint.engine.layout`
(how image and mask fit), :mod:`~napari_inpaint.engine.planning` (holes and
crops), :mod:`~napari_inpaint.engine.unit` (the units and the one function
that fills one), :mod:`~napari_inpaint.engine.reference` (reference data,
registered), :mod:`~napari_inpaint.engine.preparation` (a method's per-call
preparation), :mod:`~napari_inpaint.engine.memory` and
:mod:`~napari_inpaint.engine.graph` (the two executors), with
:mod:`~napari_inpaint.engine.hooks` and :mod:`~napari_inpaint.engine.cancel`
(progress, status, cancel).
"""

import threading
from collections.abc import Callable

import numpy as np

from napari_inpaint.engine.cancel import InpaintCancelled, checker
from napari_inpaint.engine.job import NOISE_MODELS, FillJob
from napari_inpaint.engine.layout import resolve_channel_axis
from napari_inpaint.engine.preparation import stack_of
from napari_inpaint.registry import Stack

__all__ = ["NOISE_MODELS", "FillJob", "InpaintCancelled", "inpaint", "training_stack"]


def inpaint(
    image: np.ndarray,
    mask: np.ndarray,
    method: str = "biharmonic",
    *,
    channel_axis: int | None = None,
    spatial_ndim: int = 2,
    progress: Callable[[int, int], None] | None = None,
    cancel: threading.Event | None = None,
    noise: str | None = None,
    seed: int = 0,
    clip: bool = True,
    reference=None,
    align: bool = True,
    status: Callable[[str], None] | None = None,
    return_uncertainty: bool = False,
    **params,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Fill the masked pixels of an image; every other pixel is returned unchanged.

    Parameters
    ----------
    image : array_like
        2D image, 3D volume or an nD stack of them, with an optional channel
        axis; any integer or floating dtype.  A NumPy array; a dask or zarr
        array gives a lazy dask array with the image's chunks, filled crop by
        crop as its chunks are computed (see ``docs/large-data.md``).
    mask : array_like of bool
        True (nonzero) where pixels are bad; NumPy, dask or zarr (read one
        block at a time).  Either the image's shape without
        its channel axis, or the shape of its trailing spatial axes (one mask
        for every plane of a stack), or anything that broadcasts to it.
    method : str
        Name of a method from :func:`napari_inpaint.list_methods`.
    channel_axis : int, optional
        Axis of ``image`` holding channels.  When None, a last axis of length
        3 or 4 that the mask does not have is taken as RGB(A) channels; when
        the mask would fit either way (image (4, 4, 4), mask (4, 4)), a
        ValueError asks for ``channel_axis`` or a mask of the image's shape.
    spatial_ndim : {2, 3}
        2 fills each 2D plane of a stack separately; 3 fills 3D volumes (for
        methods that support it).
    progress : callable, optional
        ``progress(done, total)`` is called as work units (holes, planes)
        finish; iterative methods also report within a unit, where ``done``
        is fractional.  An exception raised from it stops the work and
        propagates.
    cancel : threading.Event, optional
        When set, :class:`InpaintCancelled` is raised within a fraction of a
        second, even during one long solve: each fill then runs in a worker
        thread that is abandoned on cancel (and stops at its method's next
        check).  Progress is still reported on the calling thread.
    noise : {None, 'gaussian', 'poisson'}
        Add noise to the filled pixels so that they are not conspicuously
        smooth: Gaussian with the standard deviation of the surrounding known
        pixels, or Poisson (photon counts) with the fill as mean.
    seed : int or None
        Seed (a non-negative integer) for noise and stochastic methods;
        results are deterministic.  None draws a fresh seed from the
        operating system.
    clip : bool
        Keep fills within the range of the known pixels of their plane (per
        channel), as scikit-image does: smooth fills can overshoot near
        edges.  Set False to let a fill extrapolate, e.g. the peak under a
        saturated blob.
    reference : None, 'adjacent' or array_like
        Data that show what the holes hide, for the methods that use it
        (``guided``; see ``get_method(name).uses_reference``): an array of the
        image's shape or of its trailing shape (one reference for every
        plane), e.g. a second acquisition or another channel; or
        ``"adjacent"``: for a stack, each plane's nearest planes along the
        last non-spatial axis (up to two on each side), pixel by pixel
        where they are known.
    align : bool
        Shift each reference onto its plane first (sub-pixel translation by
        phase correlation of the known pixels); False when they are already
        registered.
    status : callable, optional
        ``status(text)`` is called with a short description of the stage
        when it changes (a method's preparation, e.g. "training the network",
        then "filling 3/12"), for a status line next to the progress bar.
    return_uncertainty : bool
        Also return ``sigma``: for each filled pixel, the standard deviation
        of its expected error, calibrated on probes (holes like the mask's,
        hidden in known pixels and filled the same way; see
        ``docs/uncertainty.md``): 90 % of the errors lie within 1.645 sigma
        when the probes are like the holes.  Costs one more fill of the
        probes (a few thousand pixels).
    **params
        Parameters of the method (see ``get_method(method).params``); no
        method has a parameter named like an argument above.

    Returns
    -------
    filled : ndarray or dask array
        A new array with the shape and dtype of ``image`` (lazy for a dask or
        zarr image).  Integer results are rounded and clipped to the dtype's
        range.
    sigma : ndarray or dask array of float32
        Only with ``return_uncertainty``: the shape of ``image``, 0 on known
        pixels (NaN on filled pixels when too few probes fitted in the known
        pixels to say).  Computing a lazy ``filled`` and ``sigma`` together
        (``dask.compute(filled, sigma)``) fills each crop once.

    Raises
    ------
    ValueError, TypeError
        For input that cannot be inpainted, with a message saying what to fix.
        Integer images hold at most 64 bits: their fills are computed in
        float64 (53-bit mantissa), so fills of int64/uint64 images beyond
        2**53 are rounded to float64's precision, and never wrap.
    InpaintCancelled
        When ``cancel`` was set during the run.

    Notes
    -----
    Each connected hole is filled in a crop extending ``margin`` pixels
    beyond it (the margin is declared by the method), so the cost, in time and
    memory, follows the holes, not the image.  Holes whose crops touch are
    filled together; a long thin hole of a method whose fill is local
    (``get_method(name).local_fill``) is filled in overlapping pieces.  The
    holes of a lazy result are found when ``inpaint`` is called (the mask is
    read block by block); the image is read only as its chunks are computed.

    Examples
    --------
    >>> import numpy as np
    >>> from napari_inpaint import inpaint
    >>> yy, xx = np.mgrid[:32, :32]
    >>> plane = (2.0 * yy + 3.0 * xx).astype(np.float32)
    >>> mask = np.zeros(plane.shape, bool)
    >>> mask[10:20, 12:18] = True
    >>> filled = inpaint(plane, mask, method="harmonic")
    >>> bool(np.allclose(filled, plane, atol=1e-4))
    True
    >>> filled, sigma = inpaint(plane, mask, method="harmonic", return_uncertainty=True)
    >>> sigma.dtype, bool((sigma[~mask] == 0).all()), bool((sigma[mask] >= 0).all())
    (dtype('float32'), True, True)
    """
    job = FillJob.create(
        image, mask, method, params=params, channel_axis=channel_axis, spatial_ndim=spatial_ndim, noise=noise,
        seed=seed, clip=clip, reference=reference, align=align, uncertainty=return_uncertainty,
    )
    return job.run(progress=progress, cancel=cancel, status=status)


def training_stack(
    image, mask=None, *, method: str = "learned", channel_axis: int | None = None, reference=None, align: bool = True
) -> Stack:
    """The :class:`~napari_inpaint.registry.Stack` the preparation of ``method`` would see for ``image``.

    For training outside a call (:func:`napari_inpaint.methods.learned.train_model`,
    :func:`napari_inpaint.methods.deepcr.fine_tune`): the same layout rules
    and reference data as :func:`inpaint`, 2D planes; ``mask`` None means
    every pixel is known.

    Examples
    --------
    >>> import numpy as np
    >>> stack = training_stack(np.zeros((5, 32, 32), np.uint16))
    >>> stack.planes.shape, stack.masks.shape, stack.reference is None
    ((5, 32, 32, 1), (5, 32, 32), True)
    """
    if mask is None:  # every pixel known; an RGB(A) last axis is read as for a mask without it
        shape = np.shape(image)
        channel_axis = resolve_channel_axis(shape, shape[:-1], channel_axis)
        mask = np.zeros([n for axis, n in enumerate(shape) if axis != channel_axis][-2:], bool)
    job = FillJob.create(image, mask, method, channel_axis=channel_axis, reference=reference, align=align)
    return stack_of(job, checker(None))
