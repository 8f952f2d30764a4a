"""Progress bars on stderr for the command line: tqdm when installed, else one line of text."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator


class TextBar:
    """A one-line progress bar for when tqdm is not installed."""

    def __init__(self, label: str, stream, width: int = 30):
        self.label, self.stream, self.width = label, stream, width
        self.shown: int | None = None

    def __call__(self, done: int, total: int) -> None:
        percent = 100 * done // total
        if percent == self.shown:
            return
        self.shown = percent
        bar = "#" * (self.width * done // total)
        self.stream.write(f"\r{self.label} [{bar:.<{self.width}}] {percent:3d}% ({done}/{total})")
        self.stream.flush()

    def close(self) -> None:
        if self.shown is not None:
            self.stream.write("\n")


class TqdmBar:
    """tqdm, created on the first report so that it starts with the right total."""

    def __init__(self, label: str, stream):
        from tqdm import tqdm

        self.tqdm, self.label, self.stream = tqdm, label, stream
        self.bar = None

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            self.bar = self.tqdm(desc=self.label, total=total, file=self.stream)
        self.bar.total = total
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


@contextlib.contextmanager
def progress_bar(label: str) -> Iterator[Callable[[int, int], None]]:
    """A ``progress(done, total)`` callback drawn on stderr: tqdm when installed, else plain text."""
    try:
        bar = TqdmBar(label, sys.stderr)
    except ImportError:
        bar = TextBar(label, sys.stderr)
    try:
        yield bar
    finally:
        bar.close()
