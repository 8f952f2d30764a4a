"""PyTorch devices: which exist here, which one to use, and the device parameter of every method.

PyTorch is imported inside the functions only, so importing this module (and
the package) stays cheap.

Examples
--------
>>> from napari_inpaint.models.devices import DEVICE, available_devices
>>> DEVICE.default, available_devices()[-1]
('auto', 'cpu')
"""

from typing import TYPE_CHECKING

from napari_inpaint.registry import Param

if TYPE_CHECKING:
    import torch

_KINDS = ("cpu", "cuda", "mps")


def available_devices() -> list[str]:
    """Names of the PyTorch devices present on this machine, fastest first.

    Returns
    -------
    list of str
        ``"cuda"`` (the first GPU) and ``"cuda:1"``, ``"cuda:2"``, ... for
        further GPUs when CUDA is usable, ``"mps"`` on Apple silicon, and
        always ``"cpu"`` last.  Each name is accepted by :func:`select_device`.

    Examples
    --------
    >>> from napari_inpaint.models.devices import available_devices
    >>> available_devices()[-1]
    'cpu'
    """
    import torch

    names = []
    if torch.cuda.is_available():
        names += ["cuda"] + [f"cuda:{i}" for i in range(1, torch.cuda.device_count())]
    if torch.backends.mps.is_available():
        names.append("mps")
    return names + ["cpu"]


def device_choices() -> list[str]:
    """``auto`` and the devices present: what a drop-down offers (see :data:`DEVICE`)."""
    return ["auto", *available_devices()]


def select_device(device: str = "auto") -> "torch.device":
    """Return the PyTorch device to compute on.

    Parameters
    ----------
    device : str
        ``"auto"`` picks CUDA when available, then Apple MPS, then the CPU.
        Otherwise a device name: ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or
        ``"mps"``.

    Returns
    -------
    torch.device
        The selected device.

    Raises
    ------
    ValueError
        When ``device`` is not a device name, or names a device this machine
        does not have; the message lists the devices that exist.

    Examples
    --------
    >>> from napari_inpaint.models.devices import select_device
    >>> select_device("cpu")
    device(type='cpu')
    >>> select_device().type in ("cuda", "mps", "cpu")
    True
    """
    import torch

    present = available_devices()
    if device == "auto":
        return torch.device(present[0])
    try:
        chosen = torch.device(device)
    except (RuntimeError, TypeError):
        chosen = None
    if chosen is None or chosen.type not in _KINDS:
        raise ValueError(f"unknown device {device!r}; use 'auto' or one of: {', '.join(present)}")
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    exists = {"cpu": True, "cuda": (chosen.index or 0) < gpus, "mps": "mps" in present}
    if exists[chosen.type]:
        return chosen
    hint = ""
    if chosen.type == "cuda" and torch.version.cuda is None:
        hint = f" (PyTorch {torch.__version__} was built without CUDA; install a CUDA build from pytorch.org)"
    raise ValueError(
        f"device {device!r} is not available on this machine{hint}; "
        f"available devices: auto, {', '.join(present)}"
    )


#: The ``device`` parameter of every method that runs on PyTorch.
DEVICE = Param(
    "device", str, "auto", "PyTorch device: auto (a GPU when present), cpu, cuda, cuda:N or mps",
    pattern=r"auto|cpu|mps|cuda(:\d+)?", suggestions=device_choices,
)
