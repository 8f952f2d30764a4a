"""Pretrained model weights and PyTorch devices.

The registry :data:`MODELS` describes every set of published weights the
package can use: where it is downloaded from, its hash, size, licence, input
contract, and where those facts were checked.  :func:`fetch` downloads a file
once with `pooch <https://www.fatiando.org/pooch>`_ (hash checked, written to a
temporary file and moved into place, fetched again when a cached copy is
corrupt); :func:`load` loads a TorchScript model once per process and device.

Environment variables, read at every call:

``NAPARI_INPAINT_CACHE``
    Folder for the downloaded files (default: ``pooch.os_cache("napari-inpaint")``,
    e.g. ``~/.cache/napari-inpaint`` on Linux).  Give it a folder of its own:
    files named like pooch's temporary files (``tmp`` and 8 characters) that
    have not changed for 10 minutes are deleted there, as leftovers of
    downloads that were killed.
``NAPARI_INPAINT_MIRROR``
    Base URL (``http://`` or ``https://``), ``file:///`` URL or local
    (network) folder that holds the files under their registry file names;
    used instead of the original URLs, for sites without internet access.

PyTorch, pooch and requests are imported inside the functions only, so
importing this module (and the package) stays cheap.

Examples
--------
>>> from napari_inpaint import models
>>> spec = models.MODELS["lama"]
>>> spec.licence, spec.filename
('Apache-2.0', 'big-lama.pt')
"""

import contextlib
import os
import re
import shutil
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

if TYPE_CHECKING:
    import requests
    import torch

_KINDS = ("cpu", "cuda", "mps")
CACHE_ENV = "NAPARI_INPAINT_CACHE"
MIRROR_ENV = "NAPARI_INPAINT_MIRROR"
# (connect, read) seconds: without network the user hears so at once, while a
# slow but live server may still pause between chunks.
_TIMEOUT = (10, 60)
# The read timeout bounds each read only, so a server that trickles bytes would
# hold a download forever.  A download is therefore given up when it makes no
# progress for _STALL_S seconds, or when it takes longer than its size at
# _MIN_THROUGHPUT bytes/s (at least _DEADLINE_MIN_S): 34 minutes for LaMa's
# 206 MB, well beyond what a working connection needs.
_STALL_S = 120.0
_MIN_THROUGHPUT = 100_000
_DEADLINE_MIN_S = 600.0
# How often a download checks those limits and touches its temporary file.  A
# live download's file is thus never older than this, so a temporary file left
# untouched for _STALE_TEMP_S belongs to a download that was killed.
_WATCH_INTERVAL_S = 1.0
_STALE_TEMP_S = 600.0
# The names tempfile gives, which pooch uses for the file it downloads into.
_TEMP_NAME = re.compile(r"tmp[a-z0-9_]{8}")
# Bytes per progress report: a few hundred reports for a 200 MB file.
_CHUNK = 2**20
_URL_SCHEMES = ("http", "https")


class DownloadError(OSError):
    """A model file could not be downloaded or failed its hash check."""


class _DownloadCutOff(Exception):
    """A download given up for being too slow; ``received`` bytes had arrived."""

    def __init__(self, reason: str, received: int):
        super().__init__(reason)
        self.received = received


@dataclass(frozen=True)
class ModelSpec:
    """One downloadable model file and what is known about it.

    Attributes
    ----------
    name : str
        Registry key, e.g. ``"lama"``.
    url : str
        Where the file is published.
    known_hash : str
        ``"<algorithm>:<hex digest>"`` as pooch expects (``md5`` or ``sha256``).
    size : int
        File size in bytes (approximate when ``size_exact`` is False).
    licence : str
        SPDX-style licence of the weights.
    summary : str
        One line for listings.
    source : str
        Where the URL, hash, size and licence were read (for auditing).
    kind : {'torchscript', 'state_dict'}
        TorchScript files are run by :func:`load`; state dicts are loaded by
        the code that defines their architecture.
    contract : str
        Inputs and outputs of the model (shapes, value ranges, mask polarity).
    filename : str
        Name in the cache and on a mirror (default: the URL's last component).
    commercial_use : bool
        False for licences that forbid commercial use; a warning is shown
        before such a model is downloaded or used.
    available : bool
        False when the package cannot run the weights yet; ``reason`` says why.
    reason : str
        Why ``available`` is False.
    size_exact : bool
        Whether ``size`` is the exact byte count.
    """

    name: str
    url: str
    known_hash: str
    size: int
    licence: str
    summary: str
    source: str
    kind: str = "torchscript"
    contract: str = ""
    filename: str = ""
    commercial_use: bool = True
    available: bool = True
    reason: str = ""
    size_exact: bool = True

    def __post_init__(self) -> None:
        if not self.filename:
            object.__setattr__(self, "filename", urlparse(self.url).path.rsplit("/", 1)[-1])
        algorithm, _, digest = self.known_hash.partition(":")
        if algorithm not in ("md5", "sha256") or not digest:
            raise ValueError(
                f"known_hash of {self.name!r} must be 'md5:<hex>' or 'sha256:<hex>', got {self.known_hash!r}"
            )
        if self.kind not in ("torchscript", "state_dict"):
            raise ValueError(
                f"kind of {self.name!r} must be 'torchscript' or 'state_dict', got {self.kind!r}"
            )

    def describe(self) -> dict:
        """Plain-data description (for JSON and the command line), with the cache state."""
        return {
            "name": self.name,
            "summary": self.summary,
            "licence": self.licence,
            "commercial_use": self.commercial_use,
            "size": self.size,
            "size_exact": self.size_exact,
            "url": self.url,
            "known_hash": self.known_hash,
            "filename": self.filename,
            "kind": self.kind,
            "contract": self.contract,
            "available": self.available,
            "reason": self.reason,
            "source": self.source,
            "cached": is_cached(self.name),
            "path": str(cache_path(self.name)),
        }


_IOPAINT = "github.com/Sanster/IOPaint"


def _builtin_models() -> dict[str, ModelSpec]:
    """The published weights, each with the sources its facts were checked against."""
    specs = [
        ModelSpec(
            name="lama",
            url="https://github.com/Sanster/models/releases/download/add_big_lama/big-lama.pt",
            known_hash="md5:e3aa4aaa15225a33ec84f9f4bc47e500",
            size=205_669_692,
            licence="Apache-2.0",
            summary="Big LaMa (Fourier convolutions): large holes, repeating structure; 8-px multiples",
            source=(
                f"URL and MD5: {_IOPAINT} iopaint/model/lama.py (LAMA_MODEL_URL, LAMA_MODEL_MD5), commit "
                "49e0a1806e3ee67d35f365d2e7acdc9916e0f9fd; the same pair is pinned by several independent "
                "projects. Size: 205,669,692 bytes as listed by several independent download catalogues. "
                "Weights and architecture: github.com/advimman/lama (Apache-2.0); this file is IOPaint's "
                "TorchScript export of big-lama."
            ),
            contract=(
                "forward(image, mask) -> image: image float32 1x3xHxW RGB in [0, 1], mask float32 1x1xHxW "
                "with 1 = hole, H and W multiples of 8; output 1x3xHxW RGB in [0, 1]"
            ),
        ),
        ModelSpec(
            name="migan",
            url="https://github.com/Sanster/models/releases/download/migan/migan_traced.pt",
            known_hash="md5:76eb3b1a71c400ee3290524f7a11b89c",
            size=27 * 2**20,
            size_exact=False,
            licence="MIT",
            summary="MI-GAN (Places2, 512 px): small and fast, for holes up to a few hundred pixels",
            source=(
                f"URL and MD5: {_IOPAINT} iopaint/model/mi_gan.py (MIGAN_MODEL_URL, MIGAN_MODEL_MD5), commit "
                "a73e2a531f54c693763c61f611f453add42e5c8d. Size: about 27 MiB (IOPaint model catalogue; the "
                "exact byte count was not verified). Licence: MIT, LICENSE-WEIGHTS of "
                "github.com/Picsart-AI-Research/MI-GAN."
            ),
            contract=(
                "forward(x) -> image: x float32 1x4x512x512 = concat(0.5 - mask, image * (1 - mask)) with "
                "image RGB in [-1, 1] and mask 1 = hole; output 1x3x512x512 RGB in [-1, 1]"
            ),
        ),
        ModelSpec(
            name="mat",
            url="https://github.com/Sanster/models/releases/download/add_mat/Places_512_FullData_G.pth",
            known_hash="md5:8ca927835fa3f5e21d65ffcb165377ed",
            size=239 * 2**20,
            size_exact=False,
            licence="CC-BY-NC-4.0",
            commercial_use=False,
            kind="state_dict",
            available=False,
            reason=(
                "MAT is a PyTorch state dict that needs MAT's Python architecture (a transformer with "
                "StyleGAN-style modulated convolutions, ~1,500 lines in IOPaint's mat.py); it is not "
                "implemented in napari-inpaint yet"
            ),
            summary="MAT (Places, 512 px): mask-aware transformer for large holes; non-commercial",
            source=(
                f"URL and MD5: {_IOPAINT} iopaint/model/mat.py (MAT_MODEL_URL, MAT_MODEL_MD5), commit "
                "49e0a1806e3ee67d35f365d2e7acdc9916e0f9fd. Size: about 239 MiB (IOPaint model catalogue; not "
                "verified). Licence: github.com/fenglinglwb/MAT LICENSE, which has been CC BY-NC 4.0 "
                "(commit 84d3c8351bd2b5bba2166b59f410e9d122f3233f) and MIT (commit "
                "2b843000cbcd4138d2db080800a6830f3573a0e1) in the repository's history; the stricter "
                "non-commercial reading is applied."
            ),
            contract=(
                "Generator(image, mask, z, label): image 1x3x512x512 RGB in [-1, 1], mask 1x1x512x512 with "
                "1 = KNOWN pixel (inverse polarity), z 1x512 normal noise; output RGB in [-1, 1]"
            ),
        ),
        ModelSpec(
            name="lpips-alex",
            url="https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/v0.1/alex.pth",
            known_hash="sha256:df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0",
            size=6_009,
            licence="BSD-2-Clause",
            kind="state_dict",
            summary="LPIPS v0.1 linear layers for AlexNet features (perceptual metric)",
            source=(
                "URL: lpips/weights/v0.1/alex.pth of github.com/richzhang/PerceptualSimilarity "
                "(BSD-2-Clause). SHA-256 and size computed here from the identical file shipped in the "
                "lpips 0.1.4 wheel on PyPI; the digest prefix matches the LPIPS_v0.1_alex-df73285e.pth name "
                "used by other packages."
            ),
            contract="state dict of the LPIPS 1x1 convolutions lin0..lin4 (64, 192, 384, 256, 256 channels)",
        ),
        ModelSpec(
            name="alexnet",
            url="https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
            known_hash="sha256:7be5be791159472b1fbf3c69796f7cb30dca7ad8466c2df70058c37116cdee02",
            size=244_408_911,
            licence="BSD-3-Clause",
            kind="state_dict",
            summary="torchvision AlexNet ImageNet weights (IMAGENET1K_V1), the LPIPS backbone",
            source=(
                "URL: torchvision AlexNet_Weights.IMAGENET1K_V1 (BSD-3-Clause). SHA-256 and size: pinned by "
                "several independent projects; the digest starts with 7be5be79 as torchvision's file name "
                "requires."
            ),
            contract="torchvision.models.alexnet state dict; inputs RGB normalised with ImageNet mean/std",
        ),
    ]
    return {spec.name: spec for spec in specs}


MODELS: dict[str, ModelSpec] = _builtin_models()
_LOADED: dict[tuple[str, str], "torch.jit.ScriptModule"] = {}
_LOCK = threading.Lock()
# (path, known_hash) -> ((mtime_ns, size), matches): each version of a file is hashed once per process.
_HASH_CHECKS: dict[tuple[str, str], tuple[tuple[int, int], bool]] = {}


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
    >>> from napari_inpaint.models import available_devices
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
    >>> from napari_inpaint.models import select_device
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


def list_models() -> list[ModelSpec]:
    """Every registered model, in registration order.

    Examples
    --------
    >>> from napari_inpaint.models import list_models
    >>> [spec.name for spec in list_models()][:2]
    ['lama', 'migan']
    """
    return list(MODELS.values())


def register_model(spec: ModelSpec) -> None:
    """Add ``spec`` to :data:`MODELS`, replacing an entry of the same name.

    A model already loaded under that name is forgotten, so the next
    :func:`load` uses the new file.

    Examples
    --------
    >>> from dataclasses import replace
    >>> from napari_inpaint import models
    >>> models.register_model(replace(models.MODELS["lama"], name="lama-copy"))
    >>> models.is_cached("lama-copy") in (True, False)
    True
    >>> del models.MODELS["lama-copy"]
    """
    if not isinstance(spec, ModelSpec):
        raise TypeError(f"register_model expects a ModelSpec, got {type(spec).__name__}")
    with _LOCK:
        MODELS[spec.name] = spec
        for key in [key for key in _LOADED if key[0] == spec.name]:
            del _LOADED[key]


def get_model(name: str) -> ModelSpec:
    """Return the :class:`ModelSpec` called ``name`` or raise a ValueError listing the known ones."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(MODELS)}")
    return MODELS[name]


def cache_dir() -> Path:
    """The folder holding downloaded files: ``$NAPARI_INPAINT_CACHE`` or pooch's OS cache."""
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override).expanduser()
    import pooch

    return Path(pooch.os_cache("napari-inpaint"))


def cache_path(name: str) -> Path:
    """Where model ``name`` is (or will be) stored; a file put there by hand is used if its hash matches."""
    return cache_dir() / get_model(name).filename


def is_cached(name: str) -> bool:
    """Whether the cache holds the file of model ``name`` with the right hash.

    The hash is computed once per version (modification time and size) of the
    file and process, so listing models again is fast.
    """
    return _matches_known_hash(cache_path(name), get_model(name).known_hash)


def download_url(name: str) -> str:
    """The URL (or local path) model ``name`` is fetched from: the mirror when one is set.

    Raises
    ------
    ValueError
        When ``NAPARI_INPAINT_MIRROR`` is neither an http, https or file URL
        nor a folder path.
    """
    from urllib.request import url2pathname

    spec = get_model(name)
    mirror = os.environ.get(MIRROR_ENV, "").strip()
    if not mirror:
        return spec.url
    parsed = urlparse(mirror)
    scheme = parsed.scheme.lower()
    if scheme in _URL_SCHEMES:
        return f"{mirror.rstrip('/')}/{spec.filename}"
    if scheme == "file" and parsed.netloc in ("", "localhost"):
        return str(Path(url2pathname(parsed.path)) / spec.filename)
    if len(scheme) <= 1:  # no scheme, or a Windows drive letter ("C:\\models")
        return str(Path(mirror).expanduser() / spec.filename)
    raise ValueError(
        f"{MIRROR_ENV}={mirror!r} is not a mirror napari-inpaint can read: set it to an http:// or https:// "
        f"URL, a file:/// URL or the path of a (network) folder holding {spec.filename} (to serve a folder "
        "over HTTP: python -m http.server)."
    )


def fetch(name: str, progress: Callable[[int, int], None] | None = None) -> Path:
    """Download the file of model ``name`` unless a valid copy is cached; return its path.

    Parameters
    ----------
    name : str
        A key of :data:`MODELS`.
    progress : callable, optional
        ``progress(done, total)`` in bytes while downloading (for a GUI
        progress bar).  Without it, pooch's tqdm bar is drawn on stderr.

    Returns
    -------
    pathlib.Path
        The cached file, whose hash matches ``known_hash``.

    Raises
    ------
    DownloadError
        When the file cannot be downloaded (the message names the URL and
        the path to put the file at by hand), the download is too slow (see
        Notes), or it does not match its hash (nothing is left in the cache
        then).  A cached copy that failed its hash check is named too.
    ValueError
        When ``NAPARI_INPAINT_MIRROR`` is not a mirror this module can read
        (see :func:`download_url`).

    Notes
    -----
    pooch streams into a temporary file beside the target and moves it into
    place only after its hash matched, so an interrupted download never
    leaves a partial file; a cached file whose hash does not match (corrupt,
    or an older version) is downloaded again.  Temporary files left by
    downloads that were killed are deleted once they are 10 minutes old.

    An HTTP download is given up when no data arrives for 2 minutes, or when
    it takes longer than its size at 100 kB/s, and at least 10 minutes.

    Examples
    --------
    >>> from napari_inpaint.models import fetch
    >>> path = fetch("lama")  # doctest: +SKIP
    """
    spec = get_model(name)
    if not spec.commercial_use:
        _warn_licence(spec)
    source = download_url(name)
    # Resolved as pooch resolves it, so a cache hit returns the same path as a download.
    folder = cache_dir().resolve()
    target = folder / spec.filename
    _remove_killed_downloads(folder)
    if _matches_known_hash(target, spec.known_hash):
        return target
    import pooch

    # pooch keeps a copy that fails its hash until a download replaces it.
    bad_copy = (
        f" The copy already at {target} failed its hash check: it is corrupt or another version, and will "
        "be replaced by the next successful download (or delete it)."
        if target.is_file()
        else ""
    )
    local = urlparse(source).scheme not in _URL_SCHEMES
    if local:
        downloader = _copy_from_folder
    else:
        bar = _ProgressAdapter(progress) if progress is not None else _has_tqdm()
        downloader = _GuardedHTTPDownloader(max(_DEADLINE_MIN_S, spec.size / _MIN_THROUGHPUT), bar)
    try:
        pooch.retrieve(
            source, known_hash=spec.known_hash, fname=spec.filename, path=folder, downloader=downloader
        )
    except _DownloadCutOff as cut:
        raise DownloadError(
            f"gave up downloading model {name!r} from {source}: {cut} ({cut.received:,} of about "
            f"{spec.size:,} bytes had arrived). The connection is too slow or the server stalled: retry "
            f"later, set {MIRROR_ENV} to a faster server or a folder holding {spec.filename}, or run "
            f"`napari-inpaint models fetch {name}` on a machine with a better connection and copy the file "
            f"to {target}.{bad_copy}"
        ) from None
    except ValueError as exc:  # pooch's hash mismatch of a fresh download
        raise DownloadError(
            f"the file downloaded for model {name!r} from {source} does not match its known hash "
            f"{spec.known_hash} and was discarded ({exc}). The server or mirror holds a different file; "
            f"put the right file at {target} by hand or fix {MIRROR_ENV}.{bad_copy}"
        ) from None
    except Exception as exc:  # requests' connection errors, timeouts, HTTP errors; OS errors
        if not _is_network_or_os_error(exc):
            raise
        where = "the mirror folder" if local else "the network"
        raise DownloadError(
            f"could not fetch model {name!r} from {source} ({type(exc).__name__}: {exc}). "
            f"Without access to {where}, download {spec.url} on another machine and put it at {target} "
            f"(checked against {spec.known_hash}), or set {MIRROR_ENV} to a server or folder holding "
            f"{spec.filename}.{bad_copy}"
        ) from None
    # pooch has just checked the hash of the file it moved into place.
    _HASH_CHECKS[(str(target), spec.known_hash)] = (_file_version(target), True)
    return target


def load(name: str, device: "str | torch.device" = "auto") -> "torch.jit.ScriptModule":
    """Load TorchScript model ``name`` on ``device``, once per process.

    Parameters
    ----------
    name : str
        A key of :data:`MODELS` whose ``kind`` is ``"torchscript"``.
    device : str or torch.device
        As for :func:`select_device`; ``"auto"`` and the device it resolves
        to share one loaded copy.

    Returns
    -------
    torch.jit.ScriptModule
        The model in evaluation mode; the same object on every call with the
        same name and device.

    Raises
    ------
    ValueError
        For a model that is not TorchScript or that the package cannot run.
    DownloadError
        As :func:`fetch`.

    Examples
    --------
    >>> from napari_inpaint.models import load
    >>> model = load("lama", "cpu")  # doctest: +SKIP
    """
    import torch

    spec = get_model(name)
    if not spec.available:
        raise ValueError(f"model {name!r} cannot be used: {spec.reason}")
    if spec.kind != "torchscript":
        raise ValueError(f"model {name!r} is a {spec.kind}, not a TorchScript model; use fetch({name!r})")
    target = select_device(str(device))
    key = (name, str(target))
    with _LOCK:
        if key in _LOADED:
            return _LOADED[key]
    path = fetch(name)
    try:
        with warnings.catch_warnings():
            # The published weights are TorchScript; recent PyTorch deprecates (not removes) loading it.
            warnings.simplefilter("ignore", DeprecationWarning)
            model = torch.jit.load(str(path), map_location=target).eval()
    except RuntimeError as exc:
        raise ValueError(
            f"{path} has the right hash for model {name!r} but PyTorch {torch.__version__} cannot load it "
            f"as TorchScript: {exc}"
        ) from None
    with _LOCK:
        return _LOADED.setdefault(key, model)


def clear_loaded() -> None:
    """Forget every loaded model (frees their memory once no caller holds them)."""
    with _LOCK:
        _LOADED.clear()


def _warn_licence(spec: ModelSpec) -> None:
    warnings.warn(
        f"the {spec.name!r} weights are licensed {spec.licence}: NON-COMMERCIAL use only. "
        "Do not use them, or results made with them, for commercial purposes.",
        UserWarning,
        stacklevel=3,
    )


def _has_tqdm() -> bool:
    try:
        import tqdm  # noqa: F401
    except ImportError:
        return False
    return True


def _is_network_or_os_error(exc: Exception) -> bool:
    import requests

    return isinstance(exc, (requests.RequestException, OSError))


class _ProgressAdapter:
    """The tqdm-like object pooch reports to, forwarding ``progress(done, total)``."""

    def __init__(self, progress: Callable[[int, int], None]):
        self.progress = progress
        self.total = 0
        self.done = 0

    def update(self, n: int) -> None:
        # pooch adds its chunk size per chunk, so the last step overshoots.
        self.done = min(self.done + n, self.total) if self.total else self.done + n
        self.progress(self.done, self.total or self.done)

    def reset(self) -> None:
        self.done = 0

    def close(self) -> None:
        pass


def _copy_from_folder(source: str, output_file: str, _pooch) -> None:
    """pooch downloader for a mirror that is a local or network folder."""
    shutil.copyfile(source, output_file)


class _GuardedHTTPDownloader:
    """pooch downloader: pooch's HTTPDownloader, given up when it is too slow.

    A watchdog thread shuts the connection down when the download has taken
    ``deadline_s`` seconds or has written nothing for ``_STALL_S`` seconds,
    which makes the read blocked on it fail.  Until then it touches the
    temporary file every ``_WATCH_INTERVAL_S``, which tells
    :func:`_remove_killed_downloads` in other processes that it is in use.

    Parameters
    ----------
    deadline_s : float
        Seconds the whole download may take.
    progressbar : bool or _ProgressAdapter
        As for ``pooch.HTTPDownloader``.
    """

    def __init__(self, deadline_s: float, progressbar: "bool | _ProgressAdapter"):
        import pooch

        self.deadline_s = deadline_s
        self._http = pooch.HTTPDownloader(
            progressbar=progressbar, chunk_size=_CHUNK, timeout=_TIMEOUT, hooks={"response": self._track}
        )
        self._lock = threading.Lock()
        self._response: requests.Response | None = None
        self._cut_reason = ""

    def __call__(self, url: str, output_file: str, pooch_instance: object) -> None:
        finished = threading.Event()
        watchdog = threading.Thread(
            target=self._watch,
            args=(Path(output_file), finished),
            name="napari-inpaint download watchdog",
            daemon=True,
        )
        watchdog.start()
        try:
            self._http(url, output_file, pooch_instance)
        except Exception:
            if not self._cut_reason:
                raise
            # Otherwise the error is the connection shut down by the watchdog.
        finally:
            finished.set()
            watchdog.join()
        if self._cut_reason:
            raise _DownloadCutOff(self._cut_reason, os.path.getsize(output_file))

    def _track(self, response: "requests.Response", **_kwargs) -> None:
        """requests hook: remember the latest response (of each redirect), whose socket is read."""
        with self._lock:
            self._response = response
            if self._cut_reason:  # cut off before the server answered
                _shut_down(response)

    def _watch(self, output_file: Path, finished: threading.Event) -> None:
        """Watchdog thread: touch ``output_file`` until ``finished``, or cut the download off."""
        start = last_progress = time.monotonic()
        written = 0
        while not finished.wait(_WATCH_INTERVAL_S):
            now = time.monotonic()
            with contextlib.suppress(OSError):  # only fails if another program removed the file
                size = output_file.stat().st_size
                os.utime(output_file)
                if size != written:
                    written, last_progress = size, now
            if now - start > self.deadline_s:
                reason = f"it did not finish within {self.deadline_s:.0f} s"
            elif now - last_progress > _STALL_S:
                reason = f"no data arrived for {_STALL_S:g} s"
            else:
                continue
            with self._lock:
                self._cut_reason = reason
                if self._response is not None:
                    _shut_down(self._response)
            return


def _shut_down(response: "requests.Response") -> None:
    """Shut down the socket a streamed response is read from, so that a read blocked on it fails."""
    # urllib3 2.3+ keeps the socket's shutdown for this, even after http.client took the socket over.
    with contextlib.suppress(ValueError, RuntimeError, OSError):  # the response was read or closed meanwhile
        response.raw.shutdown()


def _remove_killed_downloads(folder: Path) -> None:
    """Delete the temporary files that downloads killed mid-way left in ``folder``.

    A live download touches its file at least every ``_WATCH_INTERVAL_S``
    (an HTTP one through its watchdog, a copy by writing), so a file untouched
    for ``_STALE_TEMP_S`` has no download left to finish it.
    """
    try:
        entries = list(os.scandir(folder))
    except OSError:  # no cache folder yet
        return
    stale_before = time.time() - _STALE_TEMP_S
    for entry in entries:
        if not _TEMP_NAME.fullmatch(entry.name):
            continue
        # Best effort: removed by another process first, or still open on Windows.
        with contextlib.suppress(OSError):
            if entry.is_file(follow_symlinks=False) and entry.stat().st_mtime < stale_before:
                os.remove(entry.path)


def _file_version(path: Path) -> tuple[int, int]:
    """Modification time (ns) and size, which change when the file is rewritten."""
    stat = path.stat()
    return stat.st_mtime_ns, stat.st_size


def _matches_known_hash(path: Path, known_hash: str) -> bool:
    """Whether ``path`` is a file whose hash is ``known_hash``; hashed once per version of the file."""
    if not path.is_file():
        return False
    version = _file_version(path)
    key = (str(path), known_hash)
    checked = _HASH_CHECKS.get(key)
    if checked is None or checked[0] != version:
        import pooch

        algorithm, _, digest = known_hash.partition(":")
        checked = (version, pooch.file_hash(str(path), alg=algorithm) == digest.lower())
        _HASH_CHECKS[key] = checked
    return checked[1]
