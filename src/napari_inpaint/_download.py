"""Downloads of model files: pooch's HTTP downloader with a deadline, folder mirrors, cache hygiene.

:func:`napari_inpaint.models.fetch` is the one caller; this module holds the
mechanics it needs beyond pooch: a download that gives up when the network is
too slow, a copy from a mirror folder, the removal of temporary files left by
killed downloads, and hash checks done once per version of a file.
"""

import contextlib
import os
import re
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import requests

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


def deadline_for(size: int) -> float:
    """Seconds a download of ``size`` bytes may take before it is given up."""
    return max(_DEADLINE_MIN_S, size / _MIN_THROUGHPUT)


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

    return isinstance(exc, (requests.RequestException, OSError))


class ProgressAdapter:
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


def copy_from_folder(source: str, output_file: str, _pooch) -> None:
    """pooch downloader for a mirror that is a local or network folder."""
    shutil.copyfile(source, output_file)


class GuardedHTTPDownloader:
    """pooch downloader: pooch's HTTPDownloader, given up when it is too slow.

    A watchdog thread shuts the connection down when the download has taken
    ``deadline_s`` seconds or has written nothing for ``_STALL_S`` seconds,
    which makes the read blocked on it fail.  Until then it touches the
    temporary file every ``_WATCH_INTERVAL_S``, which tells
    :func:`remove_killed_downloads` in other processes that it is in use.

    Parameters
    ----------
    deadline_s : float
        Seconds the whole download may take.
    progressbar : bool or ProgressAdapter
        As for ``pooch.HTTPDownloader``.
    """

    def __init__(self, deadline_s: float, progressbar: "bool | ProgressAdapter"):
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
            raise DownloadCutOff(self._cut_reason, os.path.getsize(output_file))

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
