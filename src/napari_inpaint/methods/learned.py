r"""Self-supervised deep inpainting (``learned``): a network trained on the image's own known pixels.

Pretrained inpainting models learnt photographs; on a fluorescence stack or an
EM section they invent photographic texture.  ``learned`` (like ``dip``, in
:mod:`napari_inpaint.methods.dip`) learns only from the image being filled:
it trains a compact gated-convolution [1]_ U-Net with Fourier blocks [3]_
(:class:`~napari_inpaint.methods._networks.Inpainter`) once per ``inpaint``
call on the known pixels of the whole image or stack, then fills every hole
by inference.  With reference data (``reference="adjacent"`` or an image of
the same field) the network also sees the aligned reference, as
semi-parametric inpainting [4]_ feeds an auxiliary similar image, and learns
how far to trust it.  A network trained with :func:`train_model` and saved
with :func:`save_model` fills other images of the same kind through
``model=<path>`` without training again.

Notes
-----
**Self-supervised training** (``learned``).  Values are normalised per
channel, :math:`\hat x = (x - p_1) / (p_{99} - p_1)` with the 1st and 99th
percentiles of the known pixels, and mapped back at the end.  Every step
draws a batch of ``crop_size`` windows (random position and flips) and for
each a synthetic hole :math:`S`: with probability 1/2 the real mask at another
random window (so the training holes have the shape, width and density of the
real ones), otherwise a random blob (``masks.debris``) and a curved stroke
(``masks.scratch``) about as wide as the real holes (in windows under 4
pixels on a side, which only tiny images have, random pixels).  A window
is used when the synthetic hole hides a known pixel and leaves another in
view; training needs a window with two known pixels and otherwise stops
with an error that says what to do.  With :math:`R` the real
holes in the window, :math:`m = \mathbb 1_{S \cup R}` and :math:`b` the
biharmonic fill of :math:`S \cup R` (with a reference, the ``guided`` fill:
the reference's structure matched to the surroundings, so that an untrained
network is as good as ``guided`` and training learns where to trust the
reference less), the network sees the known values
outside :math:`S \cup R`, :math:`m`, :math:`b` (and the window of the
normalised reference :math:`\hat r`, when there is one), and predicts a
correction to :math:`b` (its last layer starts at zero, so a briefly trained
network gives the biharmonic fill, never much worse); the loss is the mean
absolute error on the pixels it could not see but whose truth is known,

.. math:: \mathcal L = \frac{1}{|S \setminus R|} \sum_{S \setminus R}
          \big\lvert b + g_\theta(\hat x \odot (1 - m), m, b) - \hat x \big\rvert,

minimised with Adam [2]_ whose learning rate follows a cosine decay over
the budget (``steps`` or ``seconds``, whichever runs out first).  The real
holes are then filled by the average of the predictions for the crop and its
three flips (a cheap test-time ensemble).

**Once per call.**  Training is the engine's per-call preparation: it runs
once, on windows drawn from the planes with holes and the :data:`NEIGHBOURS`
planes on each side of each (the content most like the holes'; the far
planes of a stack would only cost their reading, and their reference's
alignment), at most 256 MiB of planes (those with holes first, then evenly
spaced others), with the whole budget (``steps`` or ``seconds``, per call);
the status says which planes.  :func:`train_model`, whose network fills
other images, learns from every plane.  Each crop (a hole
with ``context`` pixels around it) is then filled by inference, one plane at
a time (``channel_independent=False``, so all channels of a plane come
together), normalised with its own known pixels' percentiles.  Many holes
thus cost one budget, not one each; ``model=<path>`` skips training.

**Reproducibility.**  Weights are initialised, noise drawn and training
windows chosen from the engine's seeded generator ``rng``; with
``seconds=0`` (no time limit) a run is repeatable.  A time budget makes the
number of steps, and so the result, depend on the machine's speed.  Torch
draws come from a :class:`torch.Generator` of the call's own, never from
torch's global RNG, so that runs in concurrent threads stay repeatable and
leave everybody else's seed alone.

References
----------
.. [1] J. Yu, Z. Lin, J. Yang, X. Shen, X. Lu and T. Huang, "Free-form image
       inpainting with gated convolution", ICCV 2019, arXiv:1806.03589.
.. [2] D. P. Kingma and J. Ba, "Adam: a method for stochastic optimization",
       ICLR 2015, arXiv:1412.6980.
.. [3] R. Suvorov et al., "Resolution-robust large mask inpainting with
       Fourier convolutions", WACV 2022, arXiv:2109.07161.
.. [4] X. Qi, Q. Chen, J. Jia and V. Koltun, "Semi-parametric image
       synthesis", CVPR 2018, arXiv:1804.10992.
"""

import os
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from napari_inpaint.methods._training import (
    Check,
    Progress,
    TrainingData,
    check_image,
    fit,
    load_model_file,
    normalised,
    normaliser,
    not_cancellable,
    predict,
    save_model_file,
    torch_generator,
)
from napari_inpaint.models.devices import DEVICE, select_device
from napari_inpaint.registry import Param, Stack, fill_docs, register

if TYPE_CHECKING:
    import torch

_FORMAT = "napari-inpaint-learned"
# Planes kept in memory for training (float32 values, and references when there are some).
_TRAINING_BYTES = 256 * 2**20
# A fill learns from the planes with holes and this many planes on each side of each (the closest content);
# far planes would cost their reading (and their reference's alignment) and serve less.
NEIGHBOURS = 2

WIDTH_HELP = "channels of the network's first level (2x and 4x deeper); more is slower"


def _new_inpainter(channels: int, width: int, rng: np.random.Generator, reference: bool) -> "torch.nn.Module":
    from napari_inpaint.methods._networks import Inpainter, build

    return build(Inpainter, channels, width, reference=reference, generator=torch_generator(rng))


def _training_planes(stack: Stack, near_holes: bool = True) -> list[int]:
    """The planes to learn from within :data:`_TRAINING_BYTES`: those with holes first, then evenly spaced.

    With ``near_holes`` (a fill) only the planes with holes and their
    :data:`NEIGHBOURS` on each side are candidates; otherwise (a network to
    keep, :func:`train_model`) every plane is.
    """
    count = stack.planes.shape[0]
    damaged = [i for i in range(count) if stack.masks[i].any()]
    candidates = list(range(count))
    if near_holes and damaged:
        near = {j for i in damaged for j in range(i - NEIGHBOURS, i + NEIGHBOURS + 1)}
        candidates = [i for i in candidates if i in near]
    per_plane = int(np.prod(stack.planes.shape[1:])) * 4 * (2 if stack.reference is not None else 1)
    room = max(1, _TRAINING_BYTES // per_plane)
    if len(candidates) <= room:
        return candidates
    chosen = damaged[:: max(1, -(-len(damaged) // room))][:room]
    spaced = np.linspace(0, len(candidates) - 1, room).round().astype(int)
    others = [candidates[i] for i in spaced if candidates[i] not in chosen]
    return sorted(chosen + others[: room - len(chosen)])


def _planes_text(planes: list[int], stack: Stack) -> str:
    """Which planes training learns from, for the status: all, or those with holes and their neighbours."""
    count = stack.planes.shape[0]
    if len(planes) == count:
        return f"all {count} plane(s)" if count > 1 else "the image"
    damaged = sum(1 for i in planes if stack.masks[i].any())
    return (f"{len(planes)} of {count} planes (the {damaged} with holes and up to {NEIGHBOURS} on each side; "
            "far planes serve less)")


def training_data(stack: Stack, check: Callable[[], None], planes: list[int] | None = None) -> TrainingData:
    """The ``planes`` normalised (each by its own known pixels' percentiles), with their references.

    By default the planes of :func:`_training_planes` over the whole stack.
    """
    planes = _training_planes(stack, near_holes=False) if planes is None else planes
    holes = np.array([stack.masks[i] for i in planes])
    if not (~holes).any(axis=(1, 2)).all():
        raise ValueError("every plane needs some known (unmasked) pixels to learn from")
    values = np.empty(holes.shape + stack.planes.shape[-1:], np.float32)
    references = None if stack.reference is None else np.empty_like(values)
    for row, index in enumerate(planes):
        check()
        plane = np.asarray(stack.planes[index], dtype=np.float64)
        values[row] = np.where(holes[row][..., None], 0.0, normalised(plane, ~holes[row]))
        if references is not None:
            reference = stack.reference(index)
            references[row] = normalised(reference, np.ones(reference.shape[:-1], bool))
    return TrainingData(values, holes, references)


def _prepare(
    stack: Stack, *, steps: int = 2000, seconds: float = 60.0, crop_size: int = 64, learning_rate: float = 2e-3,
    width: int = 16, device: str = "auto", model: str = "", rng: np.random.Generator | None = None,
    check: Check = None, progress: Progress = None, status: Callable[[str], None] | None = None,
) -> "torch.nn.Module":
    """The per-call preparation of ``learned``: train the network once, near the holes (or load ``model``)."""
    channels = stack.planes.shape[-1]
    with_reference = stack.reference is not None
    if model:
        net = load_model(model, str(select_device(device)))
        if net.config["channels"] != channels:
            raise ValueError(
                f"model {model!r} was trained on images with {net.config['channels']} channel(s); "
                f"this image has {channels}"
            )
        if net.config.get("reference", False) != with_reference:
            raise ValueError(
                f"model {model!r} was trained {'with' if not with_reference else 'without'} a reference: "
                f"fill with {'the same kind of' if not with_reference else 'no'} reference"
            )
        return net
    return _train(
        stack, _training_planes(stack, near_holes=True), steps=steps, seconds=seconds, crop_size=crop_size,
        learning_rate=learning_rate, width=width, device=device, rng=rng, check=check, progress=progress,
        status=status,
    )


def _train(
    stack: Stack, planes: list[int], *, steps: int, seconds: float, crop_size: int, learning_rate: float,
    width: int, device: str, rng: np.random.Generator | None, check: Check, progress: Progress,
    status: Callable[[str], None] | None = None,
) -> "torch.nn.Module":
    """A new network trained on the known pixels of ``planes`` of the stack."""
    torch_device = select_device(device)
    check = not_cancellable if check is None else check
    rng = np.random.default_rng(0) if rng is None else rng
    if status is not None:
        budget = f"{seconds:g} s or {steps} steps" if seconds > 0 else f"{steps} steps"
        status(f"training the network on {_planes_text(planes, stack)}, {budget}")
    data = training_data(stack, check, planes)
    net = _new_inpainter(stack.planes.shape[-1], width, rng, stack.reference is not None)
    fit(
        net, data, steps=steps, seconds=seconds, crop_size=crop_size, learning_rate=learning_rate,
        device=torch_device, rng=rng, progress=progress, check=check,
    )
    return net


# --------------------------------------------------------------------------- public API


@fill_docs
def train_model(
    stack: Stack,
    *,
    steps: int = 2000,
    seconds: float = 60.0,
    crop_size: int = 64,
    learning_rate: float = 2e-3,
    width: int = 16,
    device: str = "auto",
    seed: int = 0,
    progress: Progress = None,
    check: Check = None,
) -> "torch.nn.Module":
    """Train an inpainting network on the known pixels of an image or a stack.

    This is the training ``inpaint(..., method="learned")`` does once per
    call, kept as a network to save and reuse on other images of the same
    kind (``model=<path>``); it learns from every plane (within 256 MiB),
    where a fill learns from the planes near its holes.

    Parameters
    ----------
    stack : Stack
        The planes to learn from, their masks (bad pixels are never
        training targets) and reference data (a network trained with a
        reference needs one to fill): see
        :func:`napari_inpaint.engine.training_stack`, which makes it from an
        image or a stack as :func:`napari_inpaint.inpaint` reads them.
    steps : int
        Training steps (batches of 4 windows).
    seconds : float
        Stop after this many seconds; 0 for no time limit (repeatable).
    crop_size : int
        Side of the training windows.
    learning_rate : float
        Initial Adam learning rate (cosine decay to zero).
    width : int
        Channels of the network's first level.
    %(device)s
    seed : int
        Seeds the weights and the training windows.
    progress : callable, optional
        ``progress(done, steps)`` after every step: ``done`` is the steps
        done, or, when the time limit will end training first, ``steps``
        times the share of ``seconds`` used (a float).
    check : callable, optional
        Called often (before every step, every training window drawn and
        every plane prepared); raise from it to stop training.

    Returns
    -------
    torch.nn.Module
        The trained network, in evaluation mode; see :func:`save_model`.

    Raises
    ------
    ValueError
        If the stack has too few known pixels to learn from: a plane
        without any, or no ``crop_size`` window with at least two.

    Examples
    --------
    >>> import numpy as np
    >>> from napari_inpaint.engine import training_stack
    >>> image = np.random.default_rng(0).random((3, 32, 32))  # a small stack
    >>> net = train_model(training_stack(image), steps=2, seconds=0, crop_size=16, width=4, device="cpu")
    >>> net.config["channels"], net.config["width"], net.config["reference"]
    (1, 4, False)
    """
    return _train(
        stack, _training_planes(stack, near_holes=False), steps=steps, seconds=seconds, crop_size=crop_size,
        learning_rate=learning_rate, width=width, device=device, rng=np.random.default_rng(seed), check=check,
        progress=progress,
    )


def save_model(net: "torch.nn.Module", path: str | os.PathLike) -> None:
    """Save a network from :func:`train_model` (weights and architecture) to ``path``.

    Parameters
    ----------
    net : torch.nn.Module
        A network returned by :func:`train_model` or :func:`load_model`.
    path : str or path-like
        File to write (conventionally ``.pt``).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> import numpy as np
    >>> from napari_inpaint.engine import training_stack
    >>> net = train_model(training_stack(np.zeros((16, 16))), steps=1, seconds=0, crop_size=16, width=4, device="cpu")
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "net.pt"
    >>> save_model(net, path)
    >>> load_model(path).config == net.config
    True
    """
    save_model_file(net, path, _FORMAT)


def load_model(path: str | os.PathLike, device: str = "auto") -> "torch.nn.Module":
    """Load a network saved by :func:`save_model`.

    Parameters
    ----------
    path : str or path-like
        File written by :func:`save_model`.
    device : str
        PyTorch device for the network.

    Returns
    -------
    torch.nn.Module
        The network in evaluation mode.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is not a napari-inpaint learned model.

    Examples
    --------
    See :func:`save_model`.
    """
    return load_model_file(
        path, device, _FORMAT, what="a napari-inpaint learned model",
        writer="napari_inpaint.methods.learned.save_model", assemble=_assemble,
    )


def _assemble(config: dict, state: dict) -> "torch.nn.Module":
    import torch

    from napari_inpaint.methods._networks import Inpainter

    # Built on the meta device: no initial weights drawn from torch's global RNG, the saved ones are assigned.
    with torch.device("meta"):
        net = Inpainter(**config)
    net.load_state_dict(state, assign=True)
    return net


# --------------------------------------------------------------------------- the method


@register(
    "learned",
    summary="Self-supervised deep inpainting: trains a small network once on the image's own known pixels",
    family="network",
    artifacts=("texture", "debris", "large-holes", "scratches"),
    ndims=(2,),
    params=(
        Param("steps", int, 2000, "training steps (batches of 4 windows)", 1, 1_000_000),
        Param("seconds", float, 60.0, "training time limit per call (s); 0 = none, repeatable", 0.0, 86_400.0),
        Param("crop_size", int, 64, "side of the training windows", 16, 512, advanced=True),
        Param("learning_rate", float, 2e-3, "initial Adam learning rate (cosine decay)", 1e-5, 1.0, advanced=True),
        Param("width", int, 16, WIDTH_HELP, 4, 128, advanced=True),
        Param(
            "context", int, 64, "known pixels around each hole that the network sees when filling it", 16, 4096,
            advanced=True,
        ),
        DEVICE,
        Param("model", str, "", "file of a network saved with save_model; empty: train on the image", file=True),
    ),
    margin=lambda params: params["context"],
    local_fill=True,
    channel_independent=False,
    needs_torch=True,
    prepare=_prepare,
)
def learned(
    image: np.ndarray,
    mask: np.ndarray,
    *,
    context: int = 64,
    reference: np.ndarray | None = None,
    prepared: "torch.nn.Module | None" = None,
    check: Check = None,
) -> np.ndarray:
    """Fill the holes with the network trained once for the call (or loaded from ``model``).

    Parameters
    ----------
    %(image_mask)s
    context : int
        Used by the engine only: pixels of known context cropped around each
        hole, the surroundings the network sees.
    %(reference)s
    prepared : torch.nn.Module
        The network of the call's preparation (training, or ``model``).
    check : callable, optional
        Called between the predictions; raises to cancel.

    Returns
    -------
    ndarray
        ``image`` with the masked pixels replaced by the network's prediction.

    Raises
    ------
    ValueError
        When called without the engine's preparation, or (in the
        preparation) with too few known pixels to learn from, or a ``model``
        trained for another number of channels or use of a reference.

    Notes
    -----
    Any size works, down to a single row or column: training windows
    shrink to the image, and the network pads its input to a multiple of 8.

    Examples
    --------
    >>> import numpy as np
    >>> from napari_inpaint import inpaint
    >>> image = np.tile(np.sin(np.arange(48) / 2.0), (48, 1))
    >>> mask = np.zeros(image.shape, bool); mask[20:26, 20:26] = True
    >>> filled = inpaint(image, mask, "learned", steps=5, seconds=0, crop_size=32, width=4, device="cpu")
    >>> bool(np.array_equal(filled[~mask], image[~mask]))
    True
    """
    if prepared is None:
        raise ValueError("method 'learned' fills with the network its preparation trains: call it through inpaint()")
    check_image(image, mask)
    check = not_cancellable if check is None else check
    low, scale = normaliser(image, ~mask)
    values = np.where(mask[..., None], 0.0, (image - low) / scale)
    guide = None if reference is None else normalised(reference, np.ones(mask.shape, bool))
    filled = predict(prepared, values, mask, guide, check)
    return np.where(mask[..., None], filled * scale + low, image)
