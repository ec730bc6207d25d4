"""Problems of the Python environment, not of cvloss nor of the user's input: a torch /
torchvision pair that does not load together, a compiled extension that is missing or
built for another torch, a CUDA build of torch without a usable driver.

The CLI asks :func:`environment_problem` about every exception that is not a cvloss
error before calling it a bug: such a failure is one line naming the installed versions
and the command that fixes them (exit code 2). Nothing here imports torch or
torchvision: when their import is what fails, the installed versions are read from the
package metadata.
"""
from __future__ import annotations

import importlib.metadata
import os
import shlex
import sys

# Messages that only a broken install produces. torchvision registers its C++ operators
# (nms, roi_align...) when it is imported; against another torch they are missing and its
# import fails with "operator torchvision::nms does not exist".
_PAIR_SIGNS = ("operator torchvision::", "couldn't load custom c++ ops")
# The dynamic loader's words for a compiled extension that cannot be loaded (Linux,
# macOS, Windows) -- a missing library, or one built for another torch (a missing symbol).
_LOADER_SIGNS = ("undefined symbol", "cannot open shared object", "symbol not found", "library not loaded",
                 "dll load failed", "could not load library")
_CUDA_SIGNS = ("found no nvidia driver", "nvidia driver on your system is too old", "cuda driver initialization failed",
               "torch not compiled with cuda enabled", "no cuda gpus are available", "cuda driver version is insufficient")
_WHEELS = "https://download.pytorch.org/whl/"


def installed_version(name: str) -> str | None:
    """``name.__version__`` when the module is imported (torch's carries the build tag,
    e.g. ``2.5.1+cu124``), else the installed distribution's version from its metadata
    (the import may be what fails), else ``None`` (not installed)."""
    version = getattr(sys.modules.get(name), "__version__", None)
    if isinstance(version, str):
        return str(version)
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def matching_torchvision(torch_version: str) -> str | None:
    """The torchvision series built for ``torch_version``, as a pip pin: torch 2.m pairs
    with torchvision 0.(m+15) (2.0 -> 0.15, 2.5 -> 0.20), torch 1.m with 0.(m+1) (1.13 ->
    0.14); ``None`` for a version outside those rules. The patch release is left to pip
    (``0.20.*``): each torchvision wheel pins the exact torch it was built for."""
    parts = torch_version.split("+")[0].split(".")
    try:
        major, minor = int(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        return None
    offset = {2: 15, 1: 1}.get(major)
    return None if offset is None else f"0.{minor + offset}.*"


def install_command(torch_version: str | None, index: str | None = None) -> str:
    """``python -m pip install "torch==X" "torchvision==Y"`` for the pair built for
    ``torch_version`` (the installed torch, kept), from the wheel index of its build tag
    (``+cpu`` -> ``.../whl/cpu``, ``+cu124`` -> ``.../whl/cu124``) or of ``index`` when
    given (``cpu``). Unknown torch: the latest pair."""
    if torch_version is None:
        pins = ["torch", "torchvision"]
    else:
        base, _, tag = torch_version.partition("+")
        vision = matching_torchvision(base)
        pins = [f"torch=={base}", f"torchvision=={vision}" if vision else "torchvision"]
        index = index or (tag if tag.startswith(("cpu", "cu", "rocm")) else None)
    python = shlex.quote(sys.executable or "python")
    command = f"{python} -m pip install " + " ".join(f'"{p}"' for p in pins)
    return command + (f" --index-url {_WHEELS}{index}" if index else "")


def _chain(exc: BaseException):
    """``exc`` and the exceptions it was raised from or while handling (at most 8)."""
    seen = []
    while exc is not None and len(seen) < 8 and all(exc is not s for s in seen):
        seen.append(exc)
        exc = exc.__cause__ or exc.__context__
    return seen


def _raised_in(exc: BaseException, package: str) -> bool:
    """Whether a frame of ``exc``'s traceback is a file of ``package`` (site-packages/torch/...)."""
    tb = exc.__traceback__
    sep = os.sep
    while tb is not None:
        if f"{sep}{package}{sep}" in tb.tb_frame.f_code.co_filename:
            return True
        tb = tb.tb_next
    return False


def _versions() -> tuple[str | None, str | None]:
    return installed_version("torch"), installed_version("torchvision")


def _named(torch_version: str | None, vision_version: str | None) -> str:
    return (f"torch {torch_version or '(not installed)'} and torchvision {vision_version or '(not installed)'}")


def _classify(exc: BaseException) -> str | None:
    """``pair`` | ``torch`` | ``missing`` | ``cuda`` | ``None``: what kind of broken install
    ``exc`` (one exception, not its chain) shows."""
    text = str(exc).lower()
    name = getattr(exc, "name", None) if isinstance(exc, ModuleNotFoundError) else None
    if name in ("torch", "torchvision"):
        return "missing"
    if name in ("torch._C", "torchvision._C"):  # the compiled part of a package: a broken or foreign build
        return "torch" if name == "torch._C" else "pair"
    if any(sign in text for sign in _PAIR_SIGNS):
        return "pair"
    if any(sign in text for sign in _CUDA_SIGNS):
        return "cuda"
    if isinstance(exc, (ImportError, OSError)) and any(sign in text for sign in _LOADER_SIGNS):
        # A loader failure inside torchvision, or naming it: torchvision's extension does
        # not fit this torch; anything else in torch's files: torch itself is broken.
        if "torchvision" in text or _raised_in(exc, "torchvision"):
            return "pair"
        if "torch" in text or "libc10" in text or _raised_in(exc, "torch"):
            return "torch"
    return None


def environment_problem(exc: BaseException) -> str | None:
    """One line (no ``error:`` prefix) naming the installed torch and torchvision and the
    command that fixes them when ``exc`` -- or an exception it was raised from -- comes from
    a broken install; ``None`` when it does not (then it may well be a bug of cvloss)."""
    for e in _chain(exc):
        kind = _classify(e)
        if kind is None:
            continue
        tv, vv = _versions()
        cause = " ".join(f"{type(e).__name__}: {e}".split())
        if len(cause) > 160:
            cause = cause[:157] + "..."
        if kind == "cuda":
            return f"CUDA cannot be used ({cause}){cuda_advice(tv)}"
        what = {"pair": "do not load together",
                "torch": "do not load (torch's compiled libraries fail)",
                "missing": "cannot both be imported"}[kind]
        return (f"{_named(tv, vv)} {what} ({cause}): an environment problem, not a bug in cvloss; install the "
                f"matching pair: {install_command(tv)}")
    return None


def cuda_advice(torch_version: str | None) -> str:
    """``; <what to do>`` for a machine where torch sees no CUDA device: a variable that
    hides the GPUs, a CPU-only build (install a CUDA one), or a CUDA build without a usable
    NVIDIA driver (install one, or the CPU build and ``--device cpu``). Reads
    ``torch.version.cuda`` only when torch is already imported."""
    pair = f"torch {torch_version} (torchvision {installed_version('torchvision') or 'not installed'})"
    hidden = os.environ.get("CUDA_VISIBLE_DEVICES")
    if hidden is not None and hidden.strip() in ("", "-1"):
        return f"; CUDA_VISIBLE_DEVICES={hidden!r} hides every GPU: unset it, or use --device cpu"
    torch = sys.modules.get("torch")
    cuda = getattr(getattr(torch, "version", None), "cuda", None)
    tag = (torch_version or "").partition("+")[2]
    if torch is not None and cuda is None and not getattr(getattr(torch, "version", None), "hip", None):
        pins = install_command(torch_version, index="cuNNN")
        return (f"; {pair} is a CPU-only build: install a CUDA build, {pins} (NNN: a CUDA version your "
                f"NVIDIA driver supports, e.g. 126), or use --device cpu")
    built = f"a CUDA {cuda} build" if cuda else (f"a {tag} build" if tag else "a CUDA build")
    return (f"; {pair} is {built} but finds no usable NVIDIA GPU or driver: install the NVIDIA driver "
            f"(nvidia-smi must list the GPU), or use --device cpu with the CPU build: "
            f"{install_command(torch_version, index='cpu')}")


__all__ = ["cuda_advice", "environment_problem", "install_command", "installed_version", "matching_torchvision"]
