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

**Never worse than its start** (held-out check).  Before training, about
2048 known pixels (at most a tenth of them) are held out as *probes*:
copies of real holes (a 48-pixel piece of one longer than 80 pixels)
moved by a random offset onto known pixels of their plane, at least 1
pixel apart from the real holes and from each other, two copies at least
(``_training.hold_out``).  Training never sees them nor learns from them:
their values are zeroed and they are hidden like the real holes.  After
training, the probes are filled as the real holes are (with ``context``
pixels around them, the real holes and the other probes hidden) by the
network and by its base fill :math:`b`; the network is used only when its
mean squared error there is at least 1 % below :math:`b`'s (a gain of at
least 0.044 dB, ``_training.MARGIN``).  Otherwise every fill of the call
is :math:`b` (the biharmonic fill, or with a reference the guided one).
The status says which and by how much, and the preparation's result
(:class:`Prepared`) carries the record for provenance.  When no probe fits
(tiny images, or holes larger than a tenth of the known pixels) the
network is used unchecked, and the status says so.  A ``model=`` file is
not checked.  :func:`train_model` holds out probes too and keeps their
record on the network it returns, as ``net.held_out``.

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
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from napari_inpaint.methods._training import (
    MARGIN,
    Check,
    ProbeScore,
    Progress,
    TrainingData,
    base_fill,
    check_image,
    fit,
    hold_out,
    load_model_file,
    normalised,
    normaliser,
    not_cancellable,
    predict,
    save_model_file,
    score_probes,
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


@dataclass(frozen=True)
class Prepared:
    """What the preparation of ``learned`` hands every fill of the call.

    Attributes
    ----------
    net : torch.nn.Module
        The network trained for the call (or loaded from ``model``).
    use_network : bool
        False when the network did not beat its base fill on the held-out
        pixels: every fill of the call is then the base fill.
    provenance : dict
        What to record of the check, e.g. ``{"learned_check": {...}}``
        (:func:`check_record`); empty for a ``model=`` file (not checked).
    """

    net: "torch.nn.Module"
    use_network: bool = True
    provenance: dict = field(default_factory=dict)


def _base_name(reference: bool) -> str:
    return "guided" if reference else "biharmonic"


def check_record(score: ProbeScore | None, reference: bool) -> dict:
    """The record of the held-out check, for provenance and ``net.held_out``: which fill is used, and why.

    Examples
    --------
    >>> record = check_record(ProbeScore(1500, 0.004, 0.003), reference=False)
    >>> record["fill"], record["held_out_pixels"], record["gain_db"]
    ('network', 1500, 1.249)
    >>> check_record(None, reference=True)["fill"]
    'network (unchecked: no pixels held out)'
    """
    base = _base_name(reference)
    rule = f"the network's fill if its mean squared error on held-out pixels is at least {MARGIN:.0%} below {base}'s"
    if score is None:
        return {"fill": "network (unchecked: no pixels held out)", "base": base, "rule": rule}
    gain = score.gain_db
    return {
        "fill": "network" if score.beaten else base, "base": base, "rule": rule, "held_out_pixels": score.pixels,
        "base_mse": float(f"{score.base_error:.4g}"), "network_mse": float(f"{score.network_error:.4g}"),
        "gain_db": round(gain, 3) if np.isfinite(gain) else None,
    }


def check_text(score: ProbeScore | None, reference: bool) -> str:
    """The status line of the held-out check.

    Examples
    --------
    >>> check_text(ProbeScore(812, 0.0100, 0.0101), reference=False)
    'the network did not beat the biharmonic start on 812 held-out pixels (-0.04 dB): the start is used'
    >>> check_text(ProbeScore(812, 0.02, 0.01), reference=True)
    'the network beat the guided start on 812 held-out pixels (+3.01 dB): its fill is used'
    """
    base = _base_name(reference)
    if score is None:
        return f"no room to hold out pixels: the network's fill is used, unchecked against the {base} start"
    gain = score.gain_db
    gain_text = f"{gain:+.2f} dB" if np.isfinite(gain) else ("exact" if score.network_error == 0 else "no error")
    where = f"on {score.pixels} held-out pixels ({gain_text})"
    if score.beaten:
        return f"the network beat the {base} start {where}: its fill is used"
    return f"the network did not beat the {base} start {where}: the start is used"


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
    width: int = 16, context: int = 64, device: str = "auto", model: str = "", rng: np.random.Generator | None = None,
    check: Check = None, progress: Progress = None, status: Callable[[str], None] | None = None,
) -> Prepared:
    """The per-call preparation of ``learned``: train the network once, near the holes (or load ``model``).

    A trained network whose fill does not beat the base fill on the
    held-out pixels is marked unused: the call's fills are the base fill.
    """
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
        return Prepared(net)
    net, score = _train(
        stack, _training_planes(stack, near_holes=True), steps=steps, seconds=seconds, crop_size=crop_size,
        learning_rate=learning_rate, width=width, context=context, device=device, rng=rng, check=check,
        progress=progress, status=status,
    )
    if status is not None:
        status(check_text(score, with_reference))
    record = check_record(score, with_reference)
    return Prepared(net, score is None or score.beaten, {"learned_check": record})


def _train(
    stack: Stack, planes: list[int], *, steps: int, seconds: float, crop_size: int, learning_rate: float,
    width: int, context: int, device: str, rng: np.random.Generator | None, check: Check, progress: Progress,
    status: Callable[[str], None] | None = None,
) -> "tuple[torch.nn.Module, ProbeScore | None]":
    """A new network trained on the known pixels of ``planes`` of the stack, and its held-out score.

    Known pixels shaped like the real holes are held out (:func:`hold_out`)
    before training and scored after it, against the base fill; the score
    is None when none could be held out.
    """
    torch_device = select_device(device)
    check = not_cancellable if check is None else check
    rng = np.random.default_rng(0) if rng is None else rng
    if status is not None:
        budget = f"{seconds:g} s or {steps} steps" if seconds > 0 else f"{steps} steps"
        status(f"training the network on {_planes_text(planes, stack)}, {budget}")
    data = training_data(stack, check, planes)
    probes = hold_out(data.holes, rng, check, crop_size)
    truth = None
    if probes is not None:
        truth = data.values[probes]
        data.values[probes] = 0.0
        data.probes = probes
    net = _new_inpainter(stack.planes.shape[-1], width, rng, stack.reference is not None)
    fit(
        net, data, steps=steps, seconds=seconds, crop_size=crop_size, learning_rate=learning_rate,
        device=torch_device, rng=rng, progress=progress, check=check,
    )
    if truth is None:
        return net, None
    if status is not None:
        status(f"checking the network against the {_base_name(stack.reference is not None)} start on "
               f"{int(probes.sum())} held-out pixels")
    return net, score_probes(net, data, truth, context, check)


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
        Its attribute ``held_out`` (a dict, not saved by
        :func:`save_model`) records the held-out check, as a fill does: the
        network is returned whatever the outcome, and ``held_out["fill"]``
        says which fill a call would have used (``"network"``, or
        ``"biharmonic"`` / ``"guided"`` when the network did not beat it),
        with ``held_out_pixels``, ``base_mse``, ``network_mse`` (normalised
        values) and ``gain_db``.

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
    >>> net.held_out["fill"]  # no holes to copy: nothing held out
    'network (unchecked: no pixels held out)'
    """
    net, score = _train(
        stack, _training_planes(stack, near_holes=False), steps=steps, seconds=seconds, crop_size=crop_size,
        learning_rate=learning_rate, width=width, context=64, device=device, rng=np.random.default_rng(seed),
        check=check, progress=progress,
    )
    net.held_out = check_record(score, stack.reference is not None)
    return net


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
    prepared: "Prepared | torch.nn.Module | None" = None,
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
    prepared : Prepared or torch.nn.Module
        The network of the call's preparation (training, or ``model``), and
        whether its fill is used (otherwise the fill is the base fill); a
        bare network is used.
    check : callable, optional
        Called between the predictions; raises to cancel.

    Returns
    -------
    ndarray
        ``image`` with the masked pixels replaced by the network's prediction
        (or the base fill, when the network did not beat it on held-out pixels).

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
    if not isinstance(prepared, Prepared):  # a bare network
        prepared = Prepared(prepared)
    if prepared.use_network:
        filled = predict(prepared.net, values, mask, guide, check)
    else:  # the network did not beat its start on the held-out pixels
        filled = base_fill(values, mask, guide)
    return np.where(mask[..., None], filled * scale + low, image)
