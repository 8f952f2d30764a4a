"""Downloads of model files: HTTP with time limits, folder mirrors, cache hygiene.

:func:`napari_inpaint.models.fetch` is the one caller; this module holds the
mechanics it needs beyond pooch: an HTTP download that gives up when the
network is too slow and says which limit it hit, a copy from a mirror folder,
the removal of temporary files left by killed downloads, and hash checks done
once per version of a file.
"""

import contextlib
import os
import re
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import requests

#: Seconds without any byte arriving after which a download is given up (default :data:`_STALL_S`).
STALL_ENV = "NAPARI_INPAINT_DOWNLOAD_TIMEOUT"
# Without network the user hears so at once (the connect timeout); a live server may pause between
# packets, but not for _STALL_S: that is the socket's read timeout, so the silence is measured exactly.
_CONNECT_TIMEOUT_S = 10
_STALL_S = 120.0
# A server that trickles bytes never times out, and would hold a download forever.  A download is
# therefore also given up when it takes longer than its size at _MIN_THROUGHPUT bytes/s (at least
# _DEADLINE_MIN_S): 34 minutes for LaMa's 206 MB, well beyond what a working connection needs.
_MIN_THROUGHPUT = 100_000
_DEADLINE_MIN_S = 600.0
# How often a download checks its deadline and touches its temporary file.  A live download's file is
# thus never older than this, so a temporary file left untouched for _STALE_TEMP_S belongs to a download
# that was killed.
_WATCH_INTERVAL_S = 1.0
_STALE_TEMP_S = 600.0
# The names tempfile gives, which pooch uses for the file it downloads into.
_TEMP_NAME = re.compile(r"tmp[a-z0-9_]{8}")
# The most bytes one read takes: a read returns whatever has arrived, up to this.
_CHUNK = 2**20


def deadline_for(size: int) -> float:
    """Seconds a download of ``size`` bytes may take before it is given up."""
    return max(_DEADLINE_MIN_S, size / _MIN_THROUGHPUT)


def stall_limit() -> float:
    """Seconds without any byte arriving after which a download is given up: ``$NAPARI_INPAINT_DOWNLOAD_TIMEOUT``.

    Raises
    ------
    ValueError
        When the variable is set to something else than a positive number.
    """
    text = os.environ.get(STALL_ENV, "").strip()
    if not text:
        return _STALL_S
    try:
        seconds = float(text)
    except ValueError:
        seconds = float("nan")
    if not seconds > 0:
        raise ValueError(f"{STALL_ENV}={text!r} is not a number of seconds; set it to e.g. 300 (the default is "
                         f"{_STALL_S:g}), or unset it")
    return seconds


class DownloadCutOff(Exception):
    """A download given up for being too slow; ``received`` bytes had arrived."""

    def __init__(self, reason: str, received: int):
        super().__init__(reason)
        self.received = received


# (path, known_hash) -> ((mtime_ns, size), matches): each version of a file is hashed once per process.
HASH_CHECKS: dict[tuple[str, str], tuple[tuple[int, int], bool]] = {}


def has_tqdm() -> bool:
    try:
        import tqdm  # noqa: F401
    except ImportError:
        return False
    return True


def is_network_or_os_error(exc: Exception) -> bool:
    import requests
    import urllib3

    return isinstance(exc, (requests.RequestException, urllib3.exceptions.HTTPError, OSError))


class ProgressAdapter:
    """The tqdm-like object a download reports to, forwarding ``progress(done, total)``."""

    def __init__(self, progress: Callable[[int, int], None]):
        self.progress = progress
        self.total = 0
        self.done = 0

    def update(self, n: int) -> None:
        self.done += n
        self.progress(self.done, max(self.total, self.done))

    def close(self) -> None:
        pass


def copy_from_folder(source: str, output_file: str, _pooch) -> None:
    """pooch downloader for a mirror that is a local or network folder."""
    shutil.copyfile(source, output_file)


class GuardedHTTPDownloader:
    """pooch downloader over HTTP(S) that gives up when the transfer is too slow, saying which limit it hit.

    The body is read as it arrives, with a socket read timeout of
    :func:`stall_limit` seconds: a server silent for that long ends the
    download.  A watchdog thread shuts the connection down when the download
    has taken ``deadline_s`` seconds, which makes the read blocked on it
    fail.  Until then it touches the temporary file every
    ``_WATCH_INTERVAL_S``, which tells :func:`remove_killed_downloads` in
    other processes that it is in use.  The progress bar is closed before
    any error is raised, so that the error starts on a line of its own.

    Parameters
    ----------
    deadline_s : float
        Seconds the whole download may take.
    progressbar : bool or ProgressAdapter
        True: a tqdm bar on stderr; False: none; else an object with ``total``, ``update(n)`` and ``close()``.
    """

    def __init__(self, deadline_s: float, progressbar: "bool | ProgressAdapter"):
        self.deadline_s = deadline_s
        self.stall_s = stall_limit()
        self.progressbar = progressbar
        self._lock = threading.Lock()
        self._response: requests.Response | None = None
        self._cut_reason = ""

    def __call__(self, url: str, output_file: str, pooch_instance: object) -> None:
        import requests
        import urllib3

        finished = threading.Event()
        watchdog = threading.Thread(
            target=self._watch,
            args=(Path(output_file), finished),
            name="napari-inpaint download watchdog",
            daemon=True,
        )
        watchdog.start()
        try:
            timeout = (_CONNECT_TIMEOUT_S, self.stall_s)
            with requests.get(url, stream=True, timeout=timeout, hooks={"response": self._track}) as response:
                response.raise_for_status()
                self._receive(response, output_file)
        except (requests.exceptions.ReadTimeout, urllib3.exceptions.ReadTimeoutError):
            self._cut_reason = self._cut_reason or (
                f"no data arrived for {self.stall_s:g} s (the limit; set {STALL_ENV} to a number of seconds to "
                "wait longer)"
            )
        except Exception:
            if not self._cut_reason:
                raise
            # Otherwise the error is the connection shut down by the watchdog.
        finally:
            finished.set()
            watchdog.join()
        if self._cut_reason:
            raise DownloadCutOff(self._cut_reason, os.path.getsize(output_file))

    def _receive(self, response: "requests.Response", output_file: str) -> None:
        """Write the body of ``response`` to ``output_file`` as it arrives, reporting to the progress bar."""
        total = int(response.headers.get("content-length", 0))
        with open(output_file, "wb") as output, _progress_bar(self.progressbar, total) as bar:
            while data := response.raw.read1(_CHUNK, decode_content=True):
                output.write(data)
                bar.update(len(data))

    def _track(self, response: "requests.Response", **_kwargs) -> None:
        """requests hook: remember the latest response (of each redirect), whose socket is read."""
        with self._lock:
            self._response = response
            if self._cut_reason:  # cut off before the server answered
                _shut_down(response)

    def _watch(self, output_file: Path, finished: threading.Event) -> None:
        """Watchdog thread: touch ``output_file`` until ``finished``, or cut the download off at its deadline."""
        start = time.monotonic()
        while not finished.wait(_WATCH_INTERVAL_S):
            with contextlib.suppress(OSError):  # only fails if another program removed the file
                os.utime(output_file)
            if time.monotonic() - start <= self.deadline_s:
                continue
            with self._lock:
                self._cut_reason = (
                    f"it did not finish within {self.deadline_s:.0f} s (the limit for its size: "
                    f"{_MIN_THROUGHPUT // 1000} kB/s, and at least {_DEADLINE_MIN_S:.0f} s)"
                )
                if self._response is not None:
                    _shut_down(self._response)
            return


@contextlib.contextmanager
def _progress_bar(progressbar: "bool | ProgressAdapter", total: int) -> Iterator:
    """The bar a download reports its bytes to (``update(n)``), closed when the block ends, on error too."""
    if progressbar is True:
        from tqdm import tqdm

        # ASCII on Windows, whose consoles may not show the block characters.
        bar = tqdm(total=total or None, ncols=79, ascii=sys.platform == "win32", unit="B", unit_scale=True,
                   leave=True, file=sys.stderr)
    elif progressbar:
        bar = progressbar
        bar.total = total
    else:
        bar = ProgressAdapter(lambda done, total: None)
    try:
        yield bar
    finally:
        bar.close()


def _shut_down(response: "requests.Response") -> None:
    """Shut down the socket a streamed response is read from, so that a read blocked on it fails."""
    # urllib3 2.3+ keeps the socket's shutdown for this, even after http.client took the socket over.
    with contextlib.suppress(ValueError, RuntimeError, OSError):  # the response was read or closed meanwhile
        response.raw.shutdown()


def remove_killed_downloads(folder: Path) -> None:
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


def file_version(path: Path) -> tuple[int, int]:
    """Modification time (ns) and size, which change when the file is rewritten."""
    stat = path.stat()
    return stat.st_mtime_ns, stat.st_size


def matches_known_hash(path: Path, known_hash: str) -> bool:
    """Whether ``path`` is a file whose hash is ``known_hash``; hashed once per version of the file."""
    if not path.is_file():
        return False
    version = file_version(path)
    key = (str(path), known_hash)
    checked = HASH_CHECKS.get(key)
    if checked is None or checked[0] != version:
        import pooch

        algorithm, _, digest = known_hash.partition(":")
        checked = (version, pooch.file_hash(str(path), alg=algorithm) == digest.lower())
        HASH_CHECKS[key] = checked
    return checked[1]
