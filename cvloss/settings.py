"""The schema of a task's settings: what ``--set key=value`` may say, checked before
anything is built, loaded or written.

Each setting declares its type, range, choices and whether ``none`` is allowed; a task
declares its own in ``TaskSpec.settings`` and inherits :data:`COMMON` for the names every
task shares (``epochs``, ``batch_size``, ``lr`` ...). :func:`coerce` turns the text of a
``--set`` into the canonical value, so ``lr=1``, ``lr=1.0`` and ``lr=1e0`` are one
setting and one results folder (``+lr=1.0``).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cvloss.errors import UsageError

_NONE_WORDS = ("none", "null")
_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


@dataclass(frozen=True)
class Setting:
    """One setting: ``kind`` is ``int``, ``float``, ``bool``, ``str`` or ``image`` (the
    path of a readable image file). ``lo``/``hi`` bound numbers (``lo_open``: strictly
    above ``lo``); ``choices`` lists the allowed strings; ``nullable`` allows ``none``."""

    kind: str
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    choices: tuple[str, ...] = ()
    nullable: bool = False
    help: str = ""

    def describe(self) -> str:
        """``int >= 1``, ``float > 0``, ``one of lbfgs, adam``, ... (for error lines)."""
        if self.choices:
            text = "one of " + ", ".join(self.choices)
        elif self.kind == "bool":
            text = "true or false"
        elif self.kind == "image":
            text = "the path of an image file"
        else:
            text = self.kind
            if self.lo is not None:
                text += f" {'>' if self.lo_open else '>='} {_num(self.lo)}"
            if self.hi is not None:
                text += f"{',' if self.lo is not None else ''} <= {_num(self.hi)}"
        return text + (" or none" if self.nullable else "")


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(x)


#: The ceiling of a whole-number setting that names none of its own (a count, a width, a
#: size): ten million is beyond any count cvloss's tasks can use on a GPU node (images,
#: identities, steps), yet small enough that a typo (``n_train=10000000000``) is refused in
#: one line instead of ending, minutes later, in a MemoryError.
INT_CEILING = 10_000_000


def Int(lo: float | None = 1, hi: float | None = INT_CEILING, nullable: bool = False, help: str = "") -> Setting:
    return Setting("int", lo=lo, hi=hi, nullable=nullable, help=help)


def Float(lo: float | None = 0.0, hi: float | None = None, lo_open: bool = False, nullable: bool = False,
          help: str = "") -> Setting:
    return Setting("float", lo=lo, hi=hi, lo_open=lo_open, nullable=nullable, help=help)


def Positive(nullable: bool = False, help: str = "") -> Setting:
    """A finite float strictly above 0 (learning rates, scales)."""
    return Float(0.0, lo_open=True, nullable=nullable, help=help)


def Bool(help: str = "") -> Setting:
    return Setting("bool", help=help)


def Choice(*choices: str, nullable: bool = False, help: str = "") -> Setting:
    return Setting("str", choices=tuple(choices), nullable=nullable, help=help)


def ImagePath(help: str = "") -> Setting:
    return Setting("image", nullable=True, help=help)


# Names every task means the same thing by; a task's own ``settings`` may override them.
# Upper bounds are generous for a GPU node and the same on a laptop (a bound must not
# depend on the machine, or a command would run here and be refused there): far beyond the
# papers' protocols (CycleGAN: 200 epochs at 256 px; U-Net: full images of a few hundred
# px), they only stop typos that would otherwise run for ever or exhaust the memory.
COMMON: dict[str, Setting] = {
    # 100,000 epochs: 500x CycleGAN's 200, years at the full budget on any machine
    "epochs": Int(1, 100_000, help="training epochs"),
    "batch_size": Int(1, 65_536, help="samples per optimisation step"),
    "lr": Positive(help="learning rate"),
    "weight_decay": Float(0.0, help="L2 weight decay"),
    "beta1": Float(0.0, 1.0, help="Adam beta1"),
    "beta2": Float(0.0, 1.0, help="Adam beta2"),
    # 8192 px: 16x the largest protocol's side (DIV2K's 2K HR images are cropped to patches)
    "image_size": Int(8, 8192, help="side of the training images in pixels"),
    # 10 million images: 8x ImageNet-1k; every dataset cvloss knows holds under 15,000
    "n_train": Int(1, 10_000_000, nullable=True, help="training images (none: all)"),
    "n_val": Int(1, 10_000_000, nullable=True, help="validation images (none: all)"),
    # test has its own cap: it is evaluated twice per trial (untrained and final), val every
    # epoch, so a large test split costs little while n_val keeps the epochs cheap
    "n_test": Int(1, 10_000_000, nullable=True, help="test images (none: all)"),
    "width": Int(1, 4096, help="channels of the first stage"),
    "depth": Int(1, 16, help="stages"),
    "augment": Bool("random flips"),
    "amp": Bool("bf16 autocast on CUDA"),
    "channels_last": Bool("channels_last memory format on CUDA"),
    "n_blocks": Int(1, 1000, help="residual blocks of the generator"),
    "d_width": Int(1, 4096, help="discriminator width"),
    "cpu_threads": Int(1, 4096, nullable=True, help="torch threads on a CPU for the trial (none: leave as is)"),
}


def coerce(task: str, key: str, raw: Any, spec: Setting) -> Any:
    """The canonical value of setting ``key`` given as ``raw`` (the text after ``=``, or
    an already-typed value); :class:`UsageError` naming the setting and what it takes."""

    def bad(why: str = "") -> UsageError:
        return UsageError(f"--set {key}={raw}: {why or 'expected ' + spec.describe()} (task {task})")

    text = raw.strip() if isinstance(raw, str) else raw
    if spec.choices and text in spec.choices:  # a choice may itself be the word "none"
        return text
    if text is None or (isinstance(text, str) and text.lower() in _NONE_WORDS):
        if spec.nullable:
            return None
        raise bad(f"{key} cannot be none; expected {spec.describe()}")
    if isinstance(text, str) and text == "":
        raise bad("empty value; expected " + spec.describe())
    if isinstance(text, str) and (spec.kind in ("int", "float", "bool") or spec.choices) and "," in text:
        raise bad("one value per setting; expected " + spec.describe())
    if spec.kind == "bool":
        if isinstance(text, bool):
            return text
        low = str(text).lower()
        if low in _TRUE or low in _FALSE:
            return low in _TRUE
        raise bad()
    if spec.kind in ("int", "float"):
        value = _number(text, spec.kind)
        if value is None:
            raise bad()
        if not math.isfinite(value):
            raise bad(f"{key} must be finite; expected {spec.describe()}")
        if spec.lo is not None and (value <= spec.lo if spec.lo_open else value < spec.lo):
            raise bad()
        if spec.hi is not None and value > spec.hi:
            raise bad()
        return value
    if spec.kind == "image":
        return _image_path(key, str(text), task)
    value = str(text)
    if spec.choices and value not in spec.choices:
        raise bad()
    return value


def _number(text: Any, kind: str) -> int | float | None:
    if isinstance(text, bool):
        return None
    if kind == "int":
        if isinstance(text, int):
            return text
        if isinstance(text, float):
            return int(text) if text.is_integer() else None
        try:
            return int(str(text), 10)
        except ValueError:
            return None
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def _image_path(key: str, text: str, task: str) -> str:
    """An existing, decodable image file, as an absolute path (so the folder name and the
    trial do not depend on the current directory)."""
    path = Path(text).expanduser()
    if not path.is_file():
        raise UsageError(f"--set {key}={text}: no such file (task {task} needs an image file)")
    try:
        from PIL import Image

        with Image.open(path) as im:
            im.verify()  # reads the header and structure, not the pixels
    except Exception as exc:  # PIL raises many types for a non-image
        raise UsageError(f"--set {key}={text}: not a readable image ({type(exc).__name__})") from None
    return str(path.resolve())


def check_schema(task: str, schema: dict[str, Setting], budgets: dict[str, dict[str, Any]]) -> None:
    """Every budget value of ``task`` must be a setting of its schema and pass it (a test
    calls this for every task; a failure is a bug in the task, not bad input)."""
    for budget, params in budgets.items():
        for key, value in params.items():
            if key not in schema:
                raise AssertionError(f"task {task}: budget {budget} has setting {key!r} without a schema")
            if value is None and not schema[key].nullable:
                raise AssertionError(f"task {task}: budget {budget} sets {key}=None, not nullable")
            if value is not None and schema[key].kind != "image" and coerce(task, key, value, schema[key]) != value:
                raise AssertionError(f"task {task}: budget {budget} {key}={value!r} is not canonical")


def env_number(name: str, default, kind: type = float, positive: bool = False, unit: str = ""):
    """A limit or interval read from the environment variable ``name`` (``default`` when it
    is unset or empty): a finite ``kind`` (``int`` or ``float``) >= 0, or > 0 with
    ``positive``; anything else is one :class:`UsageError` line naming the variable."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        value = None
    ok = value is not None and math.isfinite(value) and (value > 0 if positive else value >= 0)
    if not ok:
        what = ("a positive" if positive else "a") + (" whole" if kind is int else "") + " number"
        what += (f" of {unit}" if unit else "") + ("" if positive else " >= 0")
        raise UsageError(f"${name} must be {what}; got {raw!r}")
    return value
