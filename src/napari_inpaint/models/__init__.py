"""Pretrained model weights: the registry, the download cache, and loading.

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
``NAPARI_INPAINT_DOWNLOAD_TIMEOUT``
    Seconds without any data arriving after which a download is given up
    (default 120), for connections that pause longer.

PyTorch, pooch and requests are imported inside the functions only, so
importing this module (and the package) stays cheap.

Examples
--------
>>> from napari_inpaint import models
>>> spec = models.MODELS["lama"]
>>> spec.licence, spec.filename
('Apache-2.0', 'big-lama.pt')
"""

import os
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from napari_inpaint.models import download as _download

if TYPE_CHECKING:
    import torch

CACHE_ENV = "NAPARI_INPAINT_CACHE"
MIRROR_ENV = "NAPARI_INPAINT_MIRROR"
_URL_SCHEMES = ("http", "https")


class DownloadError(OSError):
    """A model file could not be downloaded or failed its hash check."""


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
        *_deepcr_models(),
    ]
    return {spec.name: spec for spec in specs}


# deepCR's repository at the commit of its pull request #25 (April 2024), the last that changed these files
# before the 0.3.1 release; the same files are in deepCR-0.3.1.tar.gz on PyPI.
_DEEPCR = "https://github.com/profjsb/deepCR/raw/66bf0b8a0ae5d99a75e850e6a4f9ba1af3660f71/learned_models"
#: deepCR's published networks by their upstream names: registry names of the mask networks (cosmic-ray
#: probability, :func:`napari_inpaint.detect.cosmic_rays`) and of the inpainting networks (``deepcr``).
DEEPCR_MASKS = {
    "ACS-WFC": "deepcr-mask-acs-wfc", "WFC3-UVIS": "deepcr-mask-wfc3-uvis", "decam": "deepcr-mask-decam",
}
DEEPCR_INPAINTERS = {
    "ACS-WFC-F606W-2-32": "deepcr-inpaint-acs-wfc-f606w-2-32",
    "ACS-WFC-F606W-3-32": "deepcr-inpaint-acs-wfc-f606w-3-32",
}


def _deepcr_models() -> list[ModelSpec]:
    """deepCR's mask and inpainting networks (state dicts of small U-Nets, BSD-3-Clause)."""
    mask = "{} -> P(cosmic ray), Nx1xHxW in [0, 1]; state dict of a 2-level U-Net (width 32, {})"
    inpaint = (
        "concat(image * (1 - hole), hole) -> image, Nx2xHxW in electrons (hole 1 = fill) to Nx1xHxW; state "
        "dict of a {}-level U-Net (width 32, batch norm)"
    )
    facts = {  # upstream name: (folder, SHA-256, size, summary, contract)
        "ACS-WFC": (
            "mask", "0075cef7a8b72f3ecf449cac3793d3446720a97fc0ba812fb29863a9be1e7ace", 416_836,
            "deepCR cosmic-ray mask for HST ACS/WFC (all filters), images in electrons (_flc)",
            mask.format("image in electrons", "batch norm"),
        ),
        "WFC3-UVIS": (
            "mask", "92ad8d3231a0427c6fa6d9b39501549edc15fd1eb1162e028e2cf1711b2f59cd", 412_323,
            "deepCR cosmic-ray mask for HST WFC3/UVIS (all filters); threshold 0.1-0.2",
            mask.format("image standardised by its mean and standard deviation", "weight-normalised"),
        ),
        "decam": (
            "mask", "686de2afab28d13b2bff3c418ecf017d0b290ca5e8c811ef71f673ce12230815", 416_836,
            "deepCR cosmic-ray mask for DECam (trained on g band), calibrated images in ADU; preliminary",
            mask.format("image in ADU", "batch norm"),
        ),
        "ACS-WFC-F606W-2-32": (
            "inpaint", "2a754380bfe158a1cfeee12f908f96a2bd5b59cbb7b830a4d06dad930d906111", 417_988,
            "deepCR inpainting of cosmic-ray holes, HST ACS/WFC F606W, 2-level U-Net (deepCR's default)",
            inpaint.format(2),
        ),
        "ACS-WFC-F606W-3-32": (
            "inpaint", "5b4faf2e239185c2d5d4235688ce61a2b9e4e5f47bbcf96c8a687b5a0c1e6c42", 1_890_231,
            "deepCR inpainting of cosmic-ray holes, HST ACS/WFC F606W, 3-level U-Net",
            inpaint.format(3),
        ),
    }
    names = {**DEEPCR_MASKS, **DEEPCR_INPAINTERS}
    return [
        ModelSpec(
            name=names[upstream],
            url=f"{_DEEPCR}/{folder}/{upstream}.pth",
            known_hash=f"sha256:{digest}",
            size=size,
            licence="BSD-3-Clause",
            kind="state_dict",
            summary=summary,
            source=(
                "deepCR (github.com/profjsb/deepCR, BSD-3-Clause, (c) 2019 UC Berkeley), "
                f"learned_models/{folder}/{upstream}.pth. SHA-256 and size computed here from that file in "
                "deepCR-0.3.1.tar.gz on PyPI (the source distribution .ci/run downloads). The URL is pinned "
                "to the commit of pull request #25, found with a public code index; that GitHub serves the "
                "same bytes there was not checked from here. Architecture and normalisation: deepCR 0.3.1 "
                "deepCR/model.py, learned_models/__init__.py and K. Zhang & J. S. Bloom, ApJ 889 (2020) 24."
            ),
            contract=contract,
        )
        for upstream, (folder, digest, size, summary, contract) in facts.items()
    ]


MODELS: dict[str, ModelSpec] = _builtin_models()
_LOADED: dict[tuple[str, str], "torch.jit.ScriptModule"] = {}
_LOCK = threading.Lock()


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
    return _download.matches_known_hash(cache_path(name), get_model(name).known_hash)


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
        progress bar).  Without it, a tqdm bar is drawn on stderr.

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
        (see :func:`download_url`), or ``NAPARI_INPAINT_DOWNLOAD_TIMEOUT`` is
        not a number of seconds.

    Notes
    -----
    pooch streams into a temporary file beside the target and moves it into
    place only after its hash matched, so an interrupted download never
    leaves a partial file; a cached file whose hash does not match (corrupt,
    or an older version) is downloaded again.  Temporary files left by
    downloads that were killed are deleted once they are 10 minutes old.

    An HTTP download is given up when no data arrives for 2 minutes
    (``NAPARI_INPAINT_DOWNLOAD_TIMEOUT`` sets another limit), or when it
    takes longer than its size at 100 kB/s, and at least 10 minutes; the
    error says which limit it hit.

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
    _download.remove_killed_downloads(folder)
    if _download.matches_known_hash(target, spec.known_hash):
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
        downloader = _download.copy_from_folder
    else:
        bar = _download.ProgressAdapter(progress) if progress is not None else _download.has_tqdm()
        downloader = _download.GuardedHTTPDownloader(_download.deadline_for(spec.size), bar)
    try:
        pooch.retrieve(
            source, known_hash=spec.known_hash, fname=spec.filename, path=folder, downloader=downloader
        )
    except _download.DownloadCutOff as cut:
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
        if not _download.is_network_or_os_error(exc):
            raise
        where = "the mirror folder" if local else "the network"
        raise DownloadError(
            f"could not fetch model {name!r} from {source} ({type(exc).__name__}: {exc}). "
            f"Without access to {where}, download {spec.url} on another machine and put it at {target} "
            f"(checked against {spec.known_hash}), or set {MIRROR_ENV} to a server or folder holding "
            f"{spec.filename}.{bad_copy}"
        ) from None
    # pooch has just checked the hash of the file it moved into place.
    _download.HASH_CHECKS[(str(target), spec.known_hash)] = (_download.file_version(target), True)
    return target


def load(name: str, device: "str | torch.device" = "auto") -> "torch.jit.ScriptModule":
    """Load TorchScript model ``name`` on ``device``, once per process.

    Parameters
    ----------
    name : str
        A key of :data:`MODELS` whose ``kind`` is ``"torchscript"``.
    device : str or torch.device
        As for :func:`napari_inpaint.models.devices.select_device`; ``"auto"`` and the device it resolves
        to share one loaded copy.

    Returns
    -------
    torch.jit.ScriptModule
        The model in evaluation mode; the same object on every call with the
        same name and device.

    Raises
    ------
    ValueError
        For a model that is not TorchScript.
    DownloadError
        As :func:`fetch`.

    Examples
    --------
    >>> from napari_inpaint.models import load
    >>> model = load("lama", "cpu")  # doctest: +SKIP
    """
    import torch

    from napari_inpaint.models.devices import select_device

    spec = get_model(name)
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


