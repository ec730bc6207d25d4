"""The loss registry: ``@register_loss`` on a :class:`~cvloss.losses.base.Loss` subclass
records its name, family, paper and constructor arguments (read from the ``__init__``
signature, so defaults live in one place). Which tasks a loss serves is the tasks' call:
task T takes loss L when T's spec accepts L's name or kind (:func:`serves`).

Losses of other packages join the same registry through plugins
(:mod:`cvloss.losses.plugins`: the ``cvloss.losses`` entry-point group, loaded lazily
the first time the registry is read, and ``--plugin MODULE``); their :class:`LossInfo`
names the plugin (``plugin``)."""
from __future__ import annotations

import difflib
import inspect
import types
import typing
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Union

from cvloss.errors import UsageError
from cvloss.losses.base import Loss
from cvloss.task_registry import TASKS, task_names, task_spec


@dataclass(frozen=True)
class Param:
    """One constructor argument of a loss: name, default and accepted type."""

    name: str
    default: Any
    annotation: Any

    @property
    def type_name(self) -> str:
        """The accepted values as ``losses show`` prints them: ``'vgg16' | 'vgg19'`` for a
        ``Literal`` (its choices), ``float | None``, ``tuple[str, ...]``, ``int``."""
        ann = self.annotation
        if ann is inspect.Parameter.empty:
            return type(self.default).__name__ if self.default is not None else "any"
        return _type_text(ann)


def _type_text(ann: Any) -> str:
    """An annotation in words a user types: Literal choices quoted, unions with ``|``."""
    if isinstance(ann, str):
        return ann
    origin, args = typing.get_origin(ann), typing.get_args(ann)
    if origin is Literal:
        return " | ".join(repr(a) for a in args)
    if origin in (Union, types.UnionType):
        return " | ".join(_type_text(a) for a in args)
    if ann is type(None):
        return "None"
    if origin is not None and args:
        inner = ", ".join("..." if a is Ellipsis else _type_text(a) for a in args)
        return f"{getattr(origin, '__name__', str(origin))}[{inner}]"
    return getattr(ann, "__name__", str(ann))


@dataclass(frozen=True)
class LossInfo:
    """What ``cvloss losses list/show`` prints about a registered loss."""

    name: str
    cls: type
    family: str
    paper: str
    params: tuple[Param, ...] = field(default_factory=tuple)
    plugin: str | None = None  # the plugin that registered it ("mypkg 0.1", "mylosses.py"); None: cvloss

    @property
    def origin(self) -> str:
        """Where the loss comes from: ``cvloss`` or ``plugin <name>``."""
        return "cvloss" if self.plugin is None else f"plugin {self.plugin}"

    @property
    def kind(self) -> str:
        return self.cls.kind

    @property
    def tasks(self) -> tuple[str, ...]:
        """The tasks this loss serves (:func:`serves`), in :func:`task_names` order; a
        plugin task that cannot be loaded is left out here (naming it fails elsewhere)."""
        out = []
        for task in task_names():
            try:
                if serves(self, task):
                    out.append(task)
            except UsageError:
                continue
        return tuple(out)

    @property
    def summary(self) -> str:
        doc = inspect.getdoc(self.cls) or ""
        return doc.strip().splitlines()[0] if doc.strip() else ""

    @property
    def doc(self) -> str:
        return inspect.getdoc(self.cls) or ""

    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.params}

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)

    def build(self, args: dict[str, Any]) -> Any:
        """``cls(**args)``, the loss itself. cvloss's own losses raise ``ValueError`` /
        ``TypeError`` for arguments they refuse (the spec parser words them). A plugin's
        loss is another's code: whatever it raises, or a result that is not a
        :class:`~cvloss.losses.base.Loss`, is a :class:`PluginLossError` -- one line
        naming the plugin and the loss, not a bug of cvloss."""
        if self.plugin is None:
            return self.cls(**args)
        try:
            loss = self.cls(**args)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # noqa: BLE001 - a plugin may raise anything, even SystemExit
            text = " ".join(str(exc).split())[:200]
            raise PluginLossError(f"plugin {self.plugin} failed to build it ({type(exc).__name__}"
                                  f"{': ' + text if text else ''})") from None
        if not isinstance(loss, Loss):
            raise PluginLossError(f"plugin {self.plugin} built a value of type {type(loss).__name__!r}, not a cvloss "
                                  f"Loss (an nn.Module subclass of cvloss.losses.Loss)")
        return loss


class PluginLossError(UsageError):
    """A plugin's loss that could not be built (:meth:`LossInfo.build`); the message says
    which plugin and why, the spec parser adds which loss."""


_REGISTRY: dict[str, LossInfo] = {}
# The plugin being imported (innermost last), set by cvloss.losses.plugins around the
# import: what ``register_loss`` runs then belongs to it.
_PLUGIN_CONTEXT: list[str] = []


class DuplicateLossError(ValueError):
    """``register_loss`` of a name that is taken; ``name`` and ``holder`` (its LossInfo)."""

    def __init__(self, message: str, name: str, holder: LossInfo) -> None:
        super().__init__(message)
        self.name = name
        self.holder = holder


def _params_of(cls: type) -> tuple[Param, ...]:
    sig = inspect.signature(cls.__init__)
    try:
        hints = {k: v for k, v in inspect.get_annotations(cls.__init__, eval_str=True).items()}
    except Exception:  # pragma: no cover - unresolved forward references
        hints = {}
    params = []
    for p in list(sig.parameters.values())[1:]:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if p.default is inspect.Parameter.empty:
            raise TypeError(f"loss {cls.__name__}: argument {p.name!r} needs a default so the loss builds from a bare name")
        params.append(Param(p.name, p.default, hints.get(p.name, p.annotation)))
    return tuple(params)


def register_loss(name: str, *, family: str, paper: str,
                  tasks: tuple[str, ...] | list[str] | None = None) -> Callable[[type], type]:
    """Class decorator that registers a loss under ``name`` (lower-case, unique).

    A plugin uses it as cvloss does (``from cvloss.losses import Loss, register_loss``);
    a name already taken raises :class:`DuplicateLossError`, which the plugin loader
    turns into one line refusing the plugin. ``tasks`` is deprecated and ignored: the
    tasks a loss serves follow from its ``kind`` (:func:`serves`)."""
    if tasks is not None:
        warnings.warn(f"register_loss({name!r}, tasks=...) is deprecated and ignored: a task takes a loss by its "
                      f"kind (the task's slots); drop tasks=", DeprecationWarning, stacklevel=2)

    def deco(cls: type) -> type:
        if not (isinstance(cls, type) and issubclass(cls, Loss)):
            raise TypeError(f"register_loss({name!r}) decorates {getattr(cls, '__name__', type(cls).__name__)}, "
                            f"a {type(cls).__name__}, not a subclass of cvloss.losses.Loss")
        if name in _REGISTRY:
            held = _REGISTRY[name]
            raise DuplicateLossError(f"loss {name!r} is registered twice ({held.cls.__name__} of {held.origin} and "
                                     f"{cls.__name__})", name, held)
        cls.name = name
        plugin = _PLUGIN_CONTEXT[-1] if _PLUGIN_CONTEXT else None
        _REGISTRY[name] = LossInfo(name, cls, family, paper, _params_of(cls), plugin)
        return cls

    return deco


# Run each time the registry is read, after the built-in losses are registered:
# cvloss.losses.plugins adds its entry-point loader (which does its work once per process).
_ON_READ: list[Callable[[], None]] = []


def _ensure_loaded() -> None:
    # Importing the package registers every family module (and adds the plugin loader).
    import cvloss.losses  # noqa: F401

    for hook in _ON_READ:
        hook()


def get_loss_info(name: str) -> LossInfo:
    """Return the registered loss ``name``; ``KeyError`` with close matches otherwise."""
    _ensure_loaded()
    if name not in _REGISTRY:
        raise KeyError(unknown_loss_message(name))
    return _REGISTRY[name]


def unknown_loss_message(name: str) -> str:
    """One line for a name that is not registered: the close matches, and -- since every
    built-in is always registered -- that a plugin's loss needs its module loaded first
    (a name such as ``softiou`` is more likely a plugin's than a typo of ``softmax``)."""
    close = difflib.get_close_matches(name, list(_REGISTRY), n=3, cutoff=0.5)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    return (f"unknown loss {name!r}{hint}: not a built-in loss; if it comes from a plugin, pass --plugin MODULE "
            f"(a module name or a .py file); valid losses: {', '.join(sorted(_REGISTRY))}")


def serves(info: LossInfo, task: str) -> bool:
    """Whether loss ``info`` serves ``task``: the task's spec accepts its name or kind
    (``TaskSpec.accepts``: a slot lists either, and the task does not exclude the name).
    The task comes through the registry (:data:`~cvloss.task_registry.TASKS`), which
    imports its module now; an unknown task is one ``UsageError`` line."""
    return bool(task_spec(task).accepts(info.name, info.kind))


def list_losses(task: str | None = None) -> list[LossInfo]:
    """Every registered loss, sorted by family then name; only those serving ``task`` if given."""
    _ensure_loaded()
    if task is not None and task not in TASKS:
        raise TASKS.unknown(task)
    infos = [i for i in _REGISTRY.values() if task is None or serves(i, task)]
    return sorted(infos, key=lambda i: (i.family, i.name))
