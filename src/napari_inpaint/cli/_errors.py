"""What the command line says when it refuses: one line, in the command line's words.

The engine's messages name the Python arguments of :func:`napari_inpaint.inpaint`
(``channel_axis=0``, ``spatial_ndim``); :func:`in_flags` rewrites them with the
flags that set them (``--channel-axis 0``, ``--spatial-ndim``) where the command
line prints an error, so that the engine keeps its own words for Python users.
:func:`did_you_mean` suggests the closest of the names a command knows.

This module imports nothing at load time: the command line loads it before its
handling of Ctrl-C begins.
"""

from __future__ import annotations

from collections.abc import Iterable

# The engine's argument names and the flags that set them (a flag of one command or another).
_FLAGS = {
    "channel_axis": "--channel-axis", "spatial_ndim": "--spatial-ndim", "seed": "--seed", "noise": "--noise",
    "reference": "--reference", "plane": "--plane", "ratios": "--ratios", "repeats": "--repeats",
    "lpips": "--lpips", "persistent": "--persistent",
}
# An argument name that stands alone in a message (no path or longer name around it).
_ALONE = r"(?<![\w/\\.-])({})(?![\w/\\-])"


class Refused(Exception):
    """A request the command line declines: it would lose data, or an input or output is unusable."""


def in_flags(message: str) -> str:
    """``message`` with the engine's argument names given as flags, and a shape it repeats given once.

    ``name=value`` becomes the flag and its value as typed (``True`` the
    flag alone, ``False`` "without" it); a name that opens the message, or a
    name of several words anywhere, becomes the flag; a Python-only
    alternative ("or None ...") is dropped; a shape given again is named
    "that shape", or dropped when it is an alternative.

    Examples
    --------
    >>> in_flags("use spatial_ndim=2 (plane by plane) or another method")
    'use --spatial-ndim 2 (plane by plane) or another method'
    >>> in_flags("seed must be a non-negative integer (or None for a fresh one), got -1")
    '--seed must be a non-negative integer, got -1'
    >>> in_flags("image shape (40, 48): give a mask of shape (40, 48) (without channels) or of its trailing "
    ...          "plane shape (40, 48); for channels on another axis pass channel_axis")
    'image shape (40, 48): give a mask of that shape; for channels on another axis pass --channel-axis'
    """
    import re

    names = "|".join(_FLAGS)
    message = re.sub(_ALONE.format(names) + r"=('?)([^\s,;()']*)\2", lambda m: _with_value(m[1], m[3]), message)
    message = re.sub(rf"^({names})\b(?!=)", lambda m: _FLAGS[m[1]], message)
    several_words = "|".join(name for name in _FLAGS if "_" in name)
    message = re.sub(_ALONE.format(several_words), lambda m: _FLAGS[m[1]], message)
    message = re.sub(r" \(or None\b[^)]*\)", "", message)
    # A shape given again is named by reference ("image shape S: give a mask of that shape"), and an
    # alternative that is the same shape ("... or of its trailing plane shape S") is dropped.
    shape = r"(\([^()]*\))"
    message = re.sub(rf"(shape {shape}[^;]*?) of shape \2(?: \([^()]*\))?", r"\1 of that shape", message)
    return re.sub(rf"(shape {shape}[^;]*?) or of its [^;]*? shape \2", r"\1", message)


def _with_value(name: str, value: str) -> str:
    flag = _FLAGS[name]
    if value == "True":
        return flag
    if value == "False":
        return f"without {flag}"
    return f"{flag} {value}" if value else flag


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` for the name of ``known`` closest to a mistyped ``name``, else ``""``.

    Examples
    --------
    >>> did_you_mean("biharmonc", ["harmonic", "biharmonic"])
    "; did you mean 'biharmonic'?"
    >>> did_you_mean("zzz", ["harmonic"])
    ''
    """
    import difflib

    close = difflib.get_close_matches(name, list(known), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""
