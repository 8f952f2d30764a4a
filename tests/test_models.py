"""Model registry, downloads through pooch, loading, and the ``models`` command.

Real weights cannot be downloaded here, so small files and TorchScript
modules with the real input/output signature are served from an HTTP server
on 127.0.0.1 and registered with their true hashes; the download path is
pooch's own.
"""

import hashlib
import http.server
import os
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
# The fake models are written with torch.jit.script, deprecated (not removed) in recent PyTorch.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")

from napari_inpaint import inpaint, models
from napari_inpaint.cli import main
from napari_inpaint.models import download as _download
from napari_inpaint.models.devices import select_device

# A trickling response ends after this long, so that a download that is never given up on fails a test
# in bounded time instead of hanging it.
_TRICKLE_FOR_S = 5.0


class _Server:
    """A static file server that counts requests, can cut one response short, trickle files or fall silent.

    ``trickle`` maps a path to the seconds between the single bytes it is sent in; a path in ``silent`` is
    sent half-way, then nothing more.
    """

    def __init__(self, root: Path):
        self.root = root
        self.requests: Counter = Counter()
        self.truncate_once: set[str] = set()
        self.trickle: dict[str, float] = {}
        self.silent: set[str] = set()
        self.closed = threading.Event()
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=str(root), **kwargs)

            def do_GET(self):
                server.requests[self.path] += 1
                if self.path in server.truncate_once:
                    server.truncate_once.discard(self.path)
                    body = (root / self.path.lstrip("/")).read_bytes()
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body[: len(body) // 2])  # the connection drops mid-file
                    self.close_connection = True
                    return
                if self.path in server.trickle:
                    self.send_trickle(server.trickle[self.path])
                    return
                if self.path in server.silent:
                    self.send_half_then_nothing()
                    return
                super().do_GET()

            def send_half_then_nothing(self) -> None:
                body = (root / self.path.lstrip("/")).read_bytes()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.close_connection = True
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                server.closed.wait(_TRICKLE_FOR_S)

            def send_trickle(self, pause: float) -> None:
                body = (root / self.path.lstrip("/")).read_bytes()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.close_connection = True
                end = time.monotonic() + _TRICKLE_FOR_S
                try:
                    for byte in body:
                        if server.closed.wait(pause) or time.monotonic() > end:
                            return
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                except OSError:  # the client hung up
                    pass

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.closed.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def registry(monkeypatch, tmp_path):
    """A private copy of the registry, an empty cache folder and no mirror."""
    monkeypatch.setattr(models, "MODELS", dict(models.MODELS))
    monkeypatch.setattr(models, "_LOADED", {})
    monkeypatch.setenv(models.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.delenv(models.MIRROR_ENV, raising=False)
    return tmp_path / "cache"


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    served = _Server(root)
    yield served
    served.close()


def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def _sha256(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def _serve_file(server: _Server, name: str, data: bytes, **fields) -> models.ModelSpec:
    """Put ``data`` on the server and register a model for it with its real hash."""
    path = server.root / name
    path.write_bytes(data)
    fields = {"licence": "MIT", "summary": "test file", "source": "this test", **fields}
    spec = models.ModelSpec(
        name=fields.pop("model", "test-model"), url=f"{server.url}/{name}", known_hash=_sha256(path),
        size=len(data), **fields,
    )
    models.register_model(spec)
    return spec


def _save_script(module: torch.nn.Module, path: Path) -> bytes:
    torch.jit.script(module).save(str(path))
    return path.read_bytes()


def test_builtin_registry_records_verified_facts():
    for spec in models.list_models():
        assert spec.url.startswith("https://") and spec.source and spec.licence and spec.contract
        assert spec.known_hash.split(":")[0] in ("md5", "sha256")
    assert models.MODELS["lama"].licence == "Apache-2.0" and models.MODELS["lama"].size == 205_669_692
    assert models.MODELS["migan"].licence == "MIT" and models.MODELS["migan"].kind == "torchscript"
    # That every model is one the package can run is the contract test's: it fills with every method's weights.
    # torchvision names its files after the first 8 hex digits of their SHA-256.
    alexnet = models.MODELS["alexnet"]
    assert alexnet.known_hash.startswith("sha256:" + alexnet.filename.split("-")[-1].removesuffix(".pth"))
    assert models.MODELS["lpips-alex"].filename == "alex.pth"


def test_bad_spec_is_refused():
    with pytest.raises(ValueError, match="known_hash"):
        models.ModelSpec("x", "https://a/b.pt", "crc:1", 1, "MIT", "", "")
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        models.fetch("nope")


def test_first_download_then_cache_hit(registry, server):
    spec = _serve_file(server, "weights.bin", b"0123456789" * 1000)
    assert not models.is_cached(spec.name)
    path = models.fetch(spec.name)
    assert path == registry / "weights.bin" and path.read_bytes() == b"0123456789" * 1000
    assert models.is_cached(spec.name)
    assert models.fetch(spec.name) == path
    assert server.requests["/weights.bin"] == 1  # the second fetch only checked the hash


def test_progress_callback_reports_bytes(registry, server):
    data = bytes(range(256)) * 10_000
    spec = _serve_file(server, "big.bin", data)
    calls = []
    models.fetch(spec.name, progress=lambda done, total: calls.append((done, total)))
    assert calls and calls[-1] == (len(data), len(data))
    assert all(0 < done <= total == len(data) for done, total in calls)


def test_concurrent_fetches_share_one_cache(registry, server):
    data = bytes(range(256)) * 4000
    spec = _serve_file(server, "weights.bin", data)
    other = _serve_file(server, "other.bin", b"other", model="other")
    with ThreadPoolExecutor(4) as pool:
        paths = list(pool.map(models.fetch, [spec.name, other.name, spec.name, spec.name]))
    assert [path.read_bytes() for path in paths] == [data, b"other", data, data]
    assert sorted(path.name for path in registry.iterdir()) == ["other.bin", "weights.bin"]


def test_hash_mismatch_is_a_clear_error_and_leaves_nothing(registry, server):
    spec = _serve_file(server, "weights.bin", b"good data")
    models.register_model(replace(spec, known_hash="sha256:" + "0" * 64))
    with pytest.raises(models.DownloadError, match="does not match its known hash") as info:
        models.fetch(spec.name)
    assert str(registry / "weights.bin") in str(info.value)
    assert not list(registry.iterdir())


def test_corrupt_cached_file_is_fetched_again(registry, server):
    spec = _serve_file(server, "weights.bin", b"the right bytes")
    path = models.fetch(spec.name)
    path.write_bytes(b"the wrong bytes")
    assert models.fetch(spec.name).read_bytes() == b"the right bytes"
    assert server.requests["/weights.bin"] == 2


def test_interrupted_download_leaves_no_partial_file(registry, server):
    spec = _serve_file(server, "weights.bin", b"x" * 100_000)
    server.truncate_once.add("/weights.bin")
    with pytest.raises(models.DownloadError):
        models.fetch(spec.name)
    assert not list(registry.iterdir())
    assert models.fetch(spec.name).read_bytes() == b"x" * 100_000


def test_no_network_names_url_and_cache_path(registry):
    url = f"{_closed_port_url()}/big-lama.pt"
    models.register_model(replace(models.MODELS["lama"], url=url))
    with pytest.raises(models.DownloadError) as info:
        models.fetch("lama")
    message = str(info.value)
    assert url in message and str(registry / "big-lama.pt") in message and models.MIRROR_ENV in message


def test_http_mirror_replaces_the_url(registry, server, monkeypatch):
    spec = _serve_file(server, "weights.bin", b"mirrored")
    models.register_model(replace(spec, url=f"{_closed_port_url()}/elsewhere/weights.bin"))
    monkeypatch.setenv(models.MIRROR_ENV, server.url + "/")
    assert models.download_url(spec.name) == f"{server.url}/weights.bin"
    assert models.fetch(spec.name).read_bytes() == b"mirrored"


def test_folder_mirror_and_cache_variable_take_effect_without_reimport(registry, tmp_path, monkeypatch):
    folder = tmp_path / "share"
    folder.mkdir()
    (folder / "weights.bin").write_bytes(b"on a network drive")
    models.register_model(models.ModelSpec(
        "shared", "https://example.invalid/weights.bin", _sha256(folder / "weights.bin"), 18, "MIT", "", "",
    ))
    monkeypatch.setenv(models.MIRROR_ENV, str(folder))
    assert models.fetch("shared") == registry / "weights.bin"
    monkeypatch.setenv(models.CACHE_ENV, str(tmp_path / "other"))
    assert models.cache_path("shared") == tmp_path / "other" / "weights.bin"
    assert not models.is_cached("shared")
    (folder / "weights.bin").unlink()
    with pytest.raises(models.DownloadError, match="mirror folder"):
        models.fetch("shared")


def _wait_for(condition, timeout: float = 30.0):
    """Poll ``condition`` until it returns something truthy, and return that."""
    end = time.monotonic() + timeout
    while not (found := condition()):
        assert time.monotonic() < end, "timed out"
        time.sleep(0.02)
    return found


def test_trickling_server_is_given_up_at_the_deadline(registry, server, monkeypatch):
    spec = _serve_file(server, "slow.bin", b"s" * 1000)
    server.trickle["/slow.bin"] = 0.05
    monkeypatch.setattr(_download, "_DEADLINE_MIN_S", 1.0)
    monkeypatch.setattr(_download, "_WATCH_INTERVAL_S", 0.05)
    start = time.monotonic()
    with pytest.raises(models.DownloadError) as info:
        models.fetch(spec.name)
    assert time.monotonic() - start < 3
    message = str(info.value)
    assert "did not finish within 1 s" in message and spec.url in message
    assert models.MIRROR_ENV in message and f"napari-inpaint models fetch {spec.name}" in message
    assert not list(registry.iterdir())


def test_silent_server_is_given_up_naming_the_limit_and_how_to_change_it(registry, server, monkeypatch):
    spec = _serve_file(server, "stuck.bin", b"s" * 1000)
    server.silent.add("/stuck.bin")
    monkeypatch.setenv(_download.STALL_ENV, "0.5")
    start = time.monotonic()
    with pytest.raises(models.DownloadError) as info:
        models.fetch(spec.name)
    assert time.monotonic() - start < 3
    message = str(info.value)
    assert f"no data arrived for 0.5 s (the limit; set {_download.STALL_ENV}" in message
    assert "500 of about 1,000 bytes had arrived" in message and spec.url in message
    assert not list(registry.iterdir())


def test_bytes_that_keep_arriving_are_no_stall(registry, server, monkeypatch):
    # 40 bytes, one every 0.05 s: far less than a read's 1 MiB in the 0.3 s limit, but no silence of 0.3 s.
    spec = _serve_file(server, "slow.bin", b"s" * 40)
    server.trickle["/slow.bin"] = 0.05
    monkeypatch.setattr(_download, "_STALL_S", 0.3)
    monkeypatch.setattr(_download, "_WATCH_INTERVAL_S", 0.05)
    assert models.fetch(spec.name).read_bytes() == b"s" * 40


def test_an_invalid_time_limit_is_refused_naming_the_variable(registry, server, monkeypatch):
    spec = _serve_file(server, "quick.bin", b"q")
    monkeypatch.setenv(_download.STALL_ENV, "two minutes")
    with pytest.raises(ValueError, match=f"{_download.STALL_ENV}='two minutes' is not a number of seconds"):
        models.fetch(spec.name)


def test_download_error_starts_on_a_line_of_its_own(registry, server, capsys):
    # The server hangs up half-way: the progress bar is closed before the error is printed.
    spec = _serve_file(server, "cut.bin", b"s" * 1000)
    server.truncate_once.add("/cut.bin")
    assert main(["models", "fetch", spec.name]) == 2
    err = capsys.readouterr().err
    assert "500/1.00k" in err  # the progress bar was drawn
    assert "B/s]\nerror: could not fetch model 'test-model'" in err and "IncompleteRead" in err


_FETCH_IN_CHILD = """
import sys
from napari_inpaint import models
url, known_hash, size = sys.argv[1:]
models.register_model(models.ModelSpec("child", url, known_hash, int(size), "MIT", "", ""))
models.fetch("child")
"""


def test_next_fetch_removes_the_temporary_file_of_a_killed_download(registry, server):
    slow = _serve_file(server, "slow.bin", b"s" * 1000, model="slow")
    quick = _serve_file(server, "quick.bin", b"q", model="quick")
    server.trickle["/slow.bin"] = 0.05
    child = subprocess.Popen(
        [sys.executable, "-c", _FETCH_IN_CHILD, slow.url, slow.known_hash, str(slow.size)],
        env={**os.environ, models.CACHE_ENV: str(registry)}, stderr=subprocess.DEVNULL,
    )
    try:
        leftovers = _wait_for(lambda: list(registry.glob("tmp*")))
    finally:
        child.kill()  # SIGKILL: pooch gets no chance to remove its temporary file
        child.wait()
    notes = registry / "notes.txt"
    notes.write_text("not ours")
    # Time passes: the killed download's file stays untouched for longer than a live one ever is.
    long_ago = time.time() - _download._STALE_TEMP_S - 60
    for path in [*leftovers, notes]:
        os.utime(path, (long_ago, long_ago))
    assert all(path.exists() for path in leftovers)
    models.fetch(quick.name)
    assert not any(path.exists() for path in leftovers) and notes.exists()


def test_fetch_keeps_the_temporary_file_of_a_live_download(registry, server, monkeypatch):
    slow = _serve_file(server, "slow.bin", b"s" * 1000, model="slow")
    quick = _serve_file(server, "quick.bin", b"q", model="quick")
    server.trickle["/slow.bin"] = 0.05
    monkeypatch.setattr(_download, "_WATCH_INTERVAL_S", 0.05)
    monkeypatch.setattr(_download, "_STALE_TEMP_S", 0.5)
    errors = []

    def fetch_slowly() -> None:
        try:
            models.fetch(slow.name)
        except models.DownloadError as exc:
            errors.append(exc)

    thread = threading.Thread(target=fetch_slowly)
    thread.start()
    [live] = _wait_for(lambda: list(registry.glob("tmp*")))
    time.sleep(1.0)  # twice the stale age: only the download's heartbeat keeps its file fresh
    models.fetch(quick.name)
    assert live.exists()
    server.closed.set()  # end the slow download: the server hangs up mid-file
    thread.join()
    assert "IncompleteRead" in str(errors[0]) and not live.exists()


@pytest.mark.parametrize("mirror", ["ftp://mirror.example/models", "s3://bucket/models", "file://host/share"])
def test_mirror_of_an_unsupported_kind_is_refused(registry, monkeypatch, mirror):
    monkeypatch.setenv(models.MIRROR_ENV, mirror)
    with pytest.raises(ValueError) as info:
        models.fetch("lama")
    message = str(info.value)
    assert mirror in message and "http://" in message and "https://" in message and "folder" in message
    assert not registry.exists()


def test_file_url_and_drive_letter_mirrors_are_folders(registry, tmp_path, monkeypatch):
    folder = tmp_path / "share"
    folder.mkdir()
    (folder / "weights.bin").write_bytes(b"on a network drive")
    models.register_model(models.ModelSpec(
        "shared", "https://example.invalid/weights.bin", _sha256(folder / "weights.bin"), 18, "MIT", "", "",
    ))
    monkeypatch.setenv(models.MIRROR_ENV, folder.as_uri())
    assert models.fetch("shared").read_bytes() == b"on a network drive"
    monkeypatch.setenv(models.MIRROR_ENV, "D:\\models")
    assert models.download_url("shared").startswith("D:\\models")


def test_corrupt_cached_copy_is_not_cached_and_named_when_the_server_is_down(registry):
    good = b"the right bytes"
    models.register_model(models.ModelSpec(
        "offline", f"{_closed_port_url()}/weights.bin", "sha256:" + hashlib.sha256(good).hexdigest(),
        len(good), "MIT", "", "",
    ))
    registry.mkdir(parents=True)
    (registry / "weights.bin").write_bytes(b"the wrong bytes")
    assert not models.is_cached("offline")
    with pytest.raises(models.DownloadError) as info:
        models.fetch("offline")
    message = str(info.value)
    assert f"copy already at {registry / 'weights.bin'} failed its hash check" in message
    assert "replaced by the next successful download" in message
    assert (registry / "weights.bin").read_bytes() == b"the wrong bytes"


def test_is_cached_hashes_each_version_of_a_file_once(registry, server, monkeypatch):
    import pooch

    spec = _serve_file(server, "weights.bin", b"0123456789")
    path = models.fetch(spec.name)
    hashed = []
    file_hash = pooch.file_hash

    def counted_file_hash(*args, **kwargs) -> str:
        hashed.append(args[0])
        return file_hash(*args, **kwargs)

    monkeypatch.setattr(pooch, "file_hash", counted_file_hash)
    # pooch checked the hash while downloading: nothing is hashed again.
    assert models.is_cached(spec.name) and models.is_cached(spec.name) and models.fetch(spec.name) == path
    assert hashed == []
    path.write_bytes(b"9876543210")  # same size; the modification time tells the versions apart
    later = path.stat().st_mtime_ns + 10**9
    os.utime(path, ns=(later, later))
    assert not models.is_cached(spec.name) and not models.is_cached(spec.name)
    assert hashed == [str(path)]


def test_load_once_per_device_and_reload_after_register(registry, server, tmp_path, stand_in_networks):
    spec = _serve_file(server, "fake.pt", _save_script(stand_in_networks["lama"], tmp_path / "fake.pt"))
    model = models.load(spec.name, "cpu")
    assert isinstance(model, torch.jit.ScriptModule) and not model.training
    assert models.load(spec.name, "auto" if select_device().type == "cpu" else "cpu") is model
    assert server.requests["/fake.pt"] == 1
    image = torch.rand(1, 3, 16, 16)
    mask = torch.zeros(1, 1, 16, 16)
    mask[..., 4:8, 4:8] = 1
    known = mask.expand(1, 3, 16, 16) == 0
    assert torch.allclose(model(image, mask)[known], image[known])
    models.register_model(spec)
    assert models.load(spec.name, "cpu") is not model


def test_load_refuses_what_it_cannot_run(registry, server):
    spec = _serve_file(server, "linear.pth", b"not torchscript", kind="state_dict")
    with pytest.raises(ValueError, match="not a TorchScript model"):
        models.load(spec.name)
    models.register_model(replace(spec, kind="torchscript"))
    with pytest.raises(ValueError, match="cannot load it"):
        models.load(spec.name)


def test_non_commercial_licence_warns_before_use(registry, server):
    spec = _serve_file(server, "nc.bin", b"weights", commercial_use=False)
    with pytest.warns(UserWarning, match="NON-COMMERCIAL"):
        models.fetch(spec.name)


def test_inpaint_lama_end_to_end_through_http_mirror(registry, server, monkeypatch, stand_in_networks):
    data = _save_script(stand_in_networks["lama"], server.root / "big-lama.pt")
    models.register_model(replace(
        models.MODELS["lama"], known_hash="sha256:" + hashlib.sha256(data).hexdigest(), size=len(data),
    ))
    monkeypatch.setenv(models.MIRROR_ENV, server.url)
    rng = np.random.default_rng(1)
    image = rng.integers(100, 200, size=(48, 40, 3)).astype(np.uint8)
    mask = np.zeros((48, 40), bool)
    mask[20:26, 10:30] = True
    filled = inpaint(image, mask, method="lama", device="cpu", context=64)
    assert server.requests["/big-lama.pt"] == 1
    assert filled.dtype == np.uint8 and np.array_equal(filled[~mask], image[~mask])
    # The fake fills with each channel's mean of the known pixels (of the reflect-padded 48x40 crop).
    assert np.allclose(filled[mask].mean(axis=0), image[~mask].mean(axis=0), atol=3)


def test_cli_lists_and_fetches_models(registry, server, capsys):
    spec = _serve_file(server, "weights.bin", b"cli")
    models.MODELS.clear()
    models.register_model(spec)
    other = _serve_file(server, "nc.bin", b"nc", model="nc-model", licence="CC-BY-NC-4.0",
                        commercial_use=False)
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "test-model" in out and "CC-BY-NC-4.0 forbids commercial use" in out
    assert " no " in out.splitlines()[1]
    with pytest.warns(UserWarning, match="NON-COMMERCIAL"):
        assert main(["models", "fetch", "--all"]) == 0  # every registered model
    out = capsys.readouterr().out
    assert f"test-model: {registry / 'weights.bin'}" in out and f"{other.name}: {registry / 'nc.bin'}" in out
    assert main(["models", "--json"]) == 0
    assert '"cached": true' in capsys.readouterr().out
    assert main(["models", "fetch", "missing"]) == 2
    assert "unknown model 'missing'" in capsys.readouterr().err
    assert main(["models", "fetch"]) == 2
