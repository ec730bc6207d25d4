"""The loss-spec language and ``build_loss``.

Grammar (whitespace is ignored)::

    spec  := term ("+" term)*
    term  := [number "*"] call ["*" number]
    call  := NAME ["(" [arg ("," arg)*] ")"]
    arg   := NAME "=" value
    value := number | true | false | none | word | "quoted" | "[" value ("," value)* "]"

``word`` is a bare token such as ``relu2_2``, ``imagenet`` or ``/path/vgg16.pth``.
Examples: ``ce``, ``ce+0.1*topo(mu=0.5)``, ``l1+0.01*perceptual(layers=[relu2_2])+1e-4*tv``.
Argument values are checked against the loss constructor's annotations.
"""
from __future__ import annotations

import collections.abc
import inspect
import re
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal, Union

import torch
from torch import nn

from cvloss.errors import UsageError
from cvloss.losses.base import Loss
from cvloss.losses.features import VGGFeatures, shared_features
from cvloss.losses.registry import LossInfo, _REGISTRY, _ensure_loaded, list_losses, serves, unknown_loss_message
from cvloss.task_registry import TASKS


class SpecError(UsageError):
    """A loss spec that cannot be built; the message names the problem in one line."""


# ---------------------------------------------------------------- tokenizer / parser
_TOKEN = re.compile(
    r"""(?P<ws>\s+)
      | (?P<number>(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?(?![\w./~-]))
      | (?P<string>"[^"]*"|'[^']*')
      | (?P<word>[A-Za-z_./~][\w./~:-]*)
      | (?P<op>[()+*,=\[\]-])""",
    re.VERBOSE,
)


@dataclass
class Term:
    """One parsed term: ``weight * name(args)``; ``column`` is 1-based, for messages."""

    name: str
    args: dict[str, Any] = field(default_factory=dict)
    weight: float = 1.0
    column: int = 1


def _tokenize(spec: str) -> list[tuple[str, Any, int]]:
    tokens, pos = [], 0
    while pos < len(spec):
        m = _TOKEN.match(spec, pos)
        if not m:
            raise SpecError(f"syntax error at column {pos + 1} of {spec!r}: unexpected {spec[pos]!r}")
        kind = m.lastgroup
        text = m.group()
        if kind == "number":
            value: Any = float(text) if any(ch in text for ch in ".eE") else int(text)
            tokens.append(("number", value, pos + 1))
        elif kind == "string":  # quoted: always the string itself ("none" is not None)
            tokens.append(("string", text[1:-1], pos + 1))
        elif kind == "word":
            tokens.append(("word", text, pos + 1))
        elif kind == "op":
            tokens.append(("op", text, pos + 1))
        pos = m.end()
    tokens.append(("end", None, len(spec) + 1))
    return tokens


class _Parser:
    def __init__(self, spec: str) -> None:
        self.spec = spec
        self.tokens = _tokenize(spec)
        self.i = 0

    def peek(self) -> tuple[str, Any, int]:
        return self.tokens[self.i]

    def take(self) -> tuple[str, Any, int]:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def fail(self, expected: str) -> SpecError:
        kind, value, col = self.peek()
        found = "end of spec" if kind == "end" else repr(value)
        return SpecError(f"syntax error at column {col} of {self.spec!r}: expected {expected}, found {found}")

    def expect_op(self, op: str) -> None:
        kind, value, _ = self.peek()
        if kind != "op" or value != op:
            raise self.fail(repr(op))
        self.take()

    def parse(self) -> list[Term]:
        if self.peek()[0] == "end":
            raise SpecError("empty loss spec; give a loss name such as 'ce' or 'l1+0.01*perceptual'")
        terms = [self.term()]
        while self.peek()[:2] == ("op", "+"):
            self.take()
            terms.append(self.term())
        if self.peek()[0] != "end":
            raise self.fail("'+' or end of spec")
        return terms

    def term(self) -> Term:
        weight = 1.0
        kind, value, col = self.peek()
        if kind == "number":
            self.take()
            weight = float(value)
            self.expect_op("*")
        term = self.call()
        if self.peek()[:2] == ("op", "*"):
            self.take()
            kind, value, _ = self.peek()
            if kind != "number":
                raise self.fail("a number")
            self.take()
            weight *= float(value)
        term.weight = weight
        return term

    def call(self) -> Term:
        kind, name, col = self.peek()
        if kind != "word" or not re.fullmatch(r"[A-Za-z_]\w*", name):
            raise self.fail("a loss name")
        self.take()
        args: dict[str, Any] = {}
        if self.peek()[:2] == ("op", "("):
            self.take()
            if self.peek()[:2] != ("op", ")"):
                while True:
                    k_kind, key, k_col = self.peek()
                    if k_kind != "word":
                        raise self.fail("an argument name")
                    self.take()
                    self.expect_op("=")
                    if key in args:
                        raise SpecError(f"syntax error at column {k_col} of {self.spec!r}: argument {key!r} given twice")
                    args[key] = self.value()
                    if self.peek()[:2] == ("op", ","):
                        self.take()
                        continue
                    break
            self.expect_op(")")
        return Term(name.lower(), args, 1.0, col)

    def value(self) -> Any:
        kind, value, _ = self.peek()
        if (kind, value) == ("op", "-"):
            self.take()
            if self.peek()[0] != "number":
                raise self.fail("a number after '-'")
            return -self.take()[1]
        if kind == "number":
            self.take()
            return value
        if kind == "string":
            self.take()
            return value
        if kind == "word":
            self.take()
            low = value.lower()
            return {"true": True, "false": False, "none": None}.get(low, value) if low in ("true", "false", "none") else value
        if (kind, value) == ("op", "["):
            self.take()
            items = []
            if self.peek()[:2] != ("op", "]"):
                items.append(self.value())
                while self.peek()[:2] == ("op", ","):
                    self.take()
                    items.append(self.value())
            self.expect_op("]")
            return items
        raise self.fail("a value")


def parse_spec(spec: str) -> list[Term]:
    """Parse a spec string into terms; ``SpecError`` names the column of a syntax error."""
    return _Parser(spec).parse()


# ---------------------------------------------------------------- argument coercion
def _accepts_none(ann: Any) -> bool:
    """Whether ``ann`` admits the value ``None`` (``X | None``, ``Optional[X]``, ``Any``)."""
    if ann is inspect.Parameter.empty or ann is Any or ann is type(None):
        return True
    if typing.get_origin(ann) in (Union, types.UnionType):
        return any(_accepts_none(a) for a in typing.get_args(ann))
    return False


def _coerce(value: Any, ann: Any) -> Any:
    """Convert a parsed value to annotation ``ann``; ``TypeError`` when it cannot.

    A bare ``none`` parses as ``None``; for an argument that does not take ``None`` but
    does take the string ``"none"`` (``reduction: Literal["mean", "sum", "none"]``) it is
    that string, so ``l1(reduction=none)`` means what it says."""
    if value is None and not _accepts_none(ann):
        value = "none"
    if ann is inspect.Parameter.empty or ann is Any:
        return value
    origin = typing.get_origin(ann)
    if origin in (Union, types.UnionType):
        for option in typing.get_args(ann):
            try:
                return _coerce(value, option)
            except TypeError:
                continue
        raise TypeError
    if ann is type(None):
        if value is None:
            return None
        raise TypeError
    if origin is Literal:
        if value in typing.get_args(ann):
            return value
        raise TypeError
    if origin in (tuple, list, collections.abc.Sequence):
        args = [a for a in typing.get_args(ann) if a is not Ellipsis]
        elem = args[0] if args else Any
        items = value if isinstance(value, list) else [value]
        return tuple(_coerce(v, elem) for v in items)
    if ann is bool:
        if isinstance(value, bool):
            return value
        raise TypeError
    if ann is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise TypeError
    if ann is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise TypeError
    if ann is str:
        if isinstance(value, str):
            return value
        raise TypeError
    return value


def _describe_type(ann: Any) -> str:
    origin = typing.get_origin(ann)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(ann))
    if origin in (Union, types.UnionType):
        return " or ".join(_describe_type(a) for a in typing.get_args(ann))
    if origin in (tuple, list, collections.abc.Sequence):
        args = [a for a in typing.get_args(ann) if a is not Ellipsis]
        return f"a list of {_describe_type(args[0]) if args else 'values'}"
    if ann is type(None):
        return "none"
    return getattr(ann, "__name__", str(ann))


def _resolve_args(info: LossInfo, args: dict[str, Any]) -> dict[str, Any]:
    valid = ", ".join(f"{p.name}={p.default!r}" for p in info.params) or "(none)"
    out = {}
    for key, value in args.items():
        param = info.param(key)
        if param is None:
            raise SpecError(f"loss {info.name!r} has no argument {key!r}; valid arguments: {valid}")
        try:
            out[key] = _coerce(value, param.annotation)
        except TypeError:
            raise SpecError(
                f"loss {info.name!r}: argument {key}={value!r} must be {_describe_type(param.annotation)}; valid arguments: {valid}"
            ) from None
    return out


def _format_value(v: Any) -> str:
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(_format_value(x) for x in v) + "]"
    if isinstance(v, bool) or v is None:
        return str(v).lower()
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, str) and not re.fullmatch(r"[A-Za-z_./~][\w./~:-]*", v):
        return f'"{v}"'
    return str(v)


def format_term(name: str, args: dict[str, Any], weight: float = 1.0) -> str:
    """Canonical text of one term, e.g. ``0.1*topo(mu=0.5)``. The weight must be a finite
    number >= 0 (:class:`SpecError` otherwise): the grammar has no negative weights -- one
    would reward the term's error -- and ``inf`` or ``nan`` would not parse back."""
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not weight >= 0 or weight == float("inf"):
        negative = isinstance(weight, (int, float)) and weight < 0
        why = " (a negative weight would reward that term's error)" if negative else ""
        raise SpecError(f"loss {name!r}: weight {weight!r} must be a finite number >= 0{why}")
    call = name + ("(" + ",".join(f"{k}={_format_value(v)}" for k, v in args.items()) + ")" if args else "")
    return call if weight == 1.0 else f"{weight:g}*{call}"


# ---------------------------------------------------------------- the combined loss
class CombinedLoss(Loss):
    """A weighted sum Σ_i w_i · L_i of registered losses, built from a spec with ``+``.

    ``forward`` sums the terms that take the same inputs (all ``seg``, all ``image`` or
    all ``metric``). Terms a task must route itself -- an ``adversarial`` objective or
    the ``cycle``/``identity`` terms of CycleGAN -- are reached with :meth:`weighted_terms`
    (a task binds them once per trial: :func:`cvloss.tasks.base.route`).

    Feature terms (``perceptual``, ``content``, ``style``, ``texture``) share their frozen
    network: per call, each distinct (arch, weights) VGG runs once on the prediction and
    once under ``no_grad`` on the target, up to the deepest layer any term asks for (see
    :meth:`_term_values`); the value and gradient equal the sum of the terms run alone.
    """

    def __init__(self, terms: list[tuple[float, Loss]], spec: str) -> None:
        super().__init__()
        self.weights = [float(w) for w, _ in terms]
        self.terms = nn.ModuleList([loss for _, loss in terms])
        self.spec = spec
        self.name = spec
        forward_kinds = {t.kind for t in self.terms if t.kind in ("seg", "image", "metric")}
        if len(forward_kinds) > 1:
            raise SpecError(f"loss spec {spec!r} mixes terms that take different inputs: {', '.join(sorted(forward_kinds))}")
        self.kind = forward_kinds.pop() if forward_kinds else self.terms[0].kind

    def weighted_terms(self) -> list[tuple[float, Loss]]:
        return list(zip(self.weights, self.terms))

    def _term_values(self, args: tuple, kwargs: dict) -> list[tuple[float, Loss, torch.Tensor]]:
        """(weight, term, unweighted value) of every forward term.

        Feature terms that share (``FeatureLoss.shares_features``: perceptual, content,
        style, texture) get their features from :func:`~cvloss.losses.features.shared_features`:
        each frozen network runs ONCE on the prediction and ONCE, without a graph, on
        the target per call, up to the deepest layer any term needs, instead of once per
        term. Each term's own input checks run first, so errors read as before.
        """
        forward = [(w, t) for w, t in self.weighted_terms() if t.kind in ("seg", "image", "metric")]
        sharing = [t for _, t in forward if getattr(t, "shares_features", False)]
        if not sharing:
            return [(w, t, t(*args, **kwargs)) for w, t in forward]
        pred, target, weight = _image_args(*args, **kwargs)
        checked = {id(t): t.check_inputs(pred, target, weight) for t in sharing}
        feats = shared_features(sharing, pred, target)
        out = []
        for w, t in forward:
            if id(t) in checked:
                value = t.loss_from_features(*feats[id(t.extractor)], checked[id(t)])
            else:
                value = t(*args, **kwargs)
            out.append((w, t, value))
        return out

    def forward(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        parts = [w * v for w, _, v in self._term_values(args, kwargs)]
        if not parts:
            raise TypeError(f"loss {self.spec!r} has no term with a forward(); a task routes the others (weighted_terms())")
        total = parts[0]
        for p in parts[1:]:
            total = total + p
        return total

    @property
    def feature_weights(self) -> str | None:
        used = sorted({t.feature_weights for t in self.terms if t.feature_weights is not None})
        return ", ".join(used) if used else None

    def config(self) -> dict[str, Any]:
        return {"spec": self.spec, "terms": [dict(t.config(), weight=w) for w, t in self.weighted_terms()],
                **({"feature_weights": self.feature_weights} if self.feature_weights else {})}


def _image_args(pred: torch.Tensor, target: torch.Tensor | None = None, weight: torch.Tensor | None = None):
    """The (pred, target, weight) of an ``image`` loss call, however they were passed."""
    return pred, target, weight


# ---------------------------------------------------------------- build_loss
def build_loss(spec: str, task: str | None = None, feature_weights: str | None = None,
               require_scalar: bool = False) -> Loss:
    """Build an ``nn.Module`` loss from a spec string.

    Args:
        spec: e.g. ``"ce+0.1*topo(mu=0.5)"`` (see the module docstring for the grammar).
        task: when given, every term must serve it (``seg``, ``sr``, ``style``, ``embed``,
            ``translate``, ``gan``), otherwise :class:`SpecError` lists the losses that do.
        feature_weights: default ``weights=`` for terms that use a feature network and whose
            spec does not set it (``imagenet``, ``random``, ``auto`` or a path).
        require_scalar: refuse a term whose ``reduction`` is ``none`` (a per-pixel tensor,
            not a value to minimise): ``train`` and ``compare`` need a scalar.

    A single unweighted term returns the loss itself; anything else a :class:`CombinedLoss`.
    Every error is a :class:`SpecError` (a ``ValueError``) with a one-line message.
    """
    _ensure_loaded()
    if not isinstance(spec, str):
        raise SpecError(f"a loss spec must be a string such as 'ce+0.1*topo'; got {type(spec).__name__}")
    if task is not None and task not in TASKS:
        raise SpecError(str(TASKS.unknown(task)))
    terms = parse_spec(spec)
    built: list[tuple[float, Loss]] = []
    for term in terms:
        if term.name not in _REGISTRY:
            raise SpecError(unknown_loss_message(term.name))
        info = _REGISTRY[term.name]
        if task is not None and not serves(info, task):
            fit = ", ".join(i.name for i in list_losses(task))
            raise SpecError(
                f"loss {term.name!r} does not serve task {task!r} (it serves {', '.join(info.tasks)}); losses for {task}: {fit}"
            )
        args = _resolve_args(info, term.args)
        if feature_weights is not None and "weights" not in args and info.param("weights") is not None:
            args["weights"] = feature_weights
        try:
            loss = info.build(args)  # a plugin's failure or non-Loss: PluginLossError (a ValueError)
        except (ValueError, TypeError) as exc:
            raise SpecError(f"loss {term.name!r}: {exc}") from None
        loss.spec_args = args
        if require_scalar and getattr(loss, "reduction", None) == "none":
            raise SpecError(f"loss {format_term(term.name, dict(term.args))!r}: reduction=none gives a tensor per "
                            f"pixel, not a value to minimise; train and compare need a scalar: use reduction=mean or sum")
        built.append((term.weight, loss))
    adversarial = [t.name for t in terms if _REGISTRY[t.name].kind == "adversarial"]
    if task is not None and len(adversarial) > 1:
        # A task trains one discriminator against one objective; two would need two critics.
        raise SpecError(f"loss {spec!r} has {len(adversarial)} adversarial terms ({', '.join(adversarial)}); "
                        f"a task trains one adversarial objective: keep one")
    canonical = "+".join(format_term(t.name, dict(t.args), t.weight) for t in terms)
    if len(built) == 1 and built[0][0] == 1.0:
        loss = built[0][1]
        loss.spec = canonical
        return loss
    return CombinedLoss(built, canonical)


def default_feature_archs(spec: str, task: str | None = None) -> tuple[str, ...]:
    """The feature networks (``vgg16``, ``vgg19``) of the terms of ``spec`` whose weights
    the run's ``--feature-weights`` decides: every term with a frozen network that does
    not set ``weights=`` itself. Built with random weights (shared with
    ``canonical_specs``'s build): nothing is read or downloaded. For the CLI to ask for
    ImageNet weights before any training starts."""
    _ensure_loaded()
    archs: dict[str, None] = {}
    for term in parse_spec(spec):
        info = _REGISTRY.get(term.name)
        if info is None or info.param("weights") is None or "weights" in term.args:
            continue
        loss = build_loss(format_term(term.name, dict(term.args)), task=task, feature_weights="random")
        archs.update(dict.fromkeys(m.arch for m in loss.modules() if isinstance(m, VGGFeatures)))
    return tuple(archs)
