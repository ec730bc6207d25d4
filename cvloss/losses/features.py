"""Frozen VGG16 / VGG19 feature extractors for the feature-based losses (perceptual,
content, style, texture, topo).

Layers are named as in the papers (``conv1_1``, ``relu1_1`` ... ``relu5_3`` / ``relu5_4``,
``pool5``) and map one-to-one onto torchvision's ``vgg*().features`` indices
(:data:`LAYER_INDEX`), so a torchvision state_dict loads unchanged; only the
convolutional part is built. Inputs ``(N, C, H, W)``, C in {1, 3}, values in [0, 1]: the
extractor repeats one channel to three and applies the ImageNet normalisation (mean
(0.485, 0.456, 0.406), std (0.229, 0.224, 0.225)) itself. Weights: ``imagenet`` (torch
hub cache; offline, one error line naming the file), ``random[:SEED]`` (a private
generator), a state_dict path, or ``auto`` (imagenet, else random:0 with a
:class:`RandomFeaturesWarning`); :attr:`VGGFeatures.weights_used` records which.
:func:`get_feature_extractor` shares one instance per (arch, weights) between terms.
Details (files, sharing across devices): ``docs/losses.md``, "VGG feature extractors".
"""
from __future__ import annotations

import os
import re
import sys
import urllib.error
import urllib.request
import warnings
from typing import Any, Iterable

import torch
from torch import nn

from cvloss.errors import CheckpointError, UsageError
from cvloss.losses.base import Loss
from cvloss.io import load_torch_file

ARCHS = ("vgg16", "vgg19")
# Convolutions per block: VGG16 is configuration "D", VGG19 configuration "E" of
# Simonyan & Zisserman 2015; every block ends with a 2x2 max pool, stride 2.
_BLOCKS = {"vgg16": (2, 2, 3, 3, 3), "vgg19": (2, 2, 4, 4, 4)}
_CHANNELS = (64, 128, 256, 512, 512)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_URLS = {
    "vgg16": "https://download.pytorch.org/models/vgg16-397923af.pth",
    "vgg19": "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth",
}


def _layer_names(arch: str) -> tuple[str, ...]:
    names = []
    for b, n_conv in enumerate(_BLOCKS[arch], start=1):
        for i in range(1, n_conv + 1):
            names += [f"conv{b}_{i}", f"relu{b}_{i}"]
        names.append(f"pool{b}")
    return tuple(names)


#: layer name -> index in torchvision's ``vgg16().features`` / ``vgg19().features``.
LAYER_INDEX: dict[str, dict[str, int]] = {a: {n: i for i, n in enumerate(_layer_names(a))} for a in ARCHS}
#: layer name -> spatial stride of its output w.r.t. the input: block b's convolutions
#: see the input downsampled 2^(b-1) times, its pool 2^b times.
_STRIDE: dict[str, dict[str, int]] = {
    a: {n: 2 ** (int(n[4]) - (0 if n.startswith("pool") else 1)) for n in LAYER_INDEX[a]} for a in ARCHS
}


def layer_stride(arch: str, layer: str) -> int:
    """Downsampling factor of ``layer``'s output w.r.t. the input (1, 2, 4, 8, 16 or 32)."""
    check_layers(arch, (layer,))
    return _STRIDE[arch][layer]


class FeatureWeightsError(UsageError):
    """Feature-network weights that cannot be resolved or loaded (the message says why)."""


class RandomFeaturesWarning(UserWarning):
    """``weights="auto"`` fell back to random VGG weights: numbers are not ImageNet ones."""


def check_arch(arch: str) -> None:
    if arch not in ARCHS:
        raise ValueError(f"unknown feature network {arch!r}; valid: {', '.join(ARCHS)}")


def check_layers(arch: str, layers: Iterable[str]) -> tuple[str, ...]:
    """Return ``layers`` as a tuple; ``ValueError`` listing the valid names otherwise."""
    check_arch(arch)
    layers = tuple(layers)
    if not layers:
        raise ValueError(f"give at least one {arch} layer; valid: {', '.join(LAYER_INDEX[arch])}")
    bad = [l for l in layers if l not in LAYER_INDEX[arch]]
    if bad:
        raise ValueError(f"unknown {arch} layer(s) {', '.join(map(repr, bad))}; valid: {', '.join(LAYER_INDEX[arch])}")
    return layers


def hub_checkpoint_path(arch: str) -> str:
    """Where torchvision's weights API caches the ImageNet weights of ``arch``."""
    check_arch(arch)
    return os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(_URLS[arch]))


class WeightsUnavailable(FeatureWeightsError):
    """ImageNet weights that are not in torch hub's cache and cannot be downloaded now
    (offline); ``reason`` is the short why (the message adds what to fetch, and where)."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def _unreachable(url: str, timeout: float) -> str | None:
    """``None`` when ``url``'s server answers a HEAD request within ``timeout`` seconds,
    else why not (offline: name resolution fails within seconds; an HTTP error status)."""
    request = urllib.request.Request(url, method="HEAD", headers={"User-Agent": "cvloss"})
    try:
        with urllib.request.urlopen(request, timeout=timeout):
            return None
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code} {exc.reason}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return " ".join(str(getattr(exc, "reason", None) or exc).split())


def imagenet_weights_file(arch: str, timeout: float = 10.0) -> str:
    """The path of torchvision's ImageNet weights of ``arch`` in torch hub's cache
    (:func:`hub_checkpoint_path`), downloaded there first when missing.

    Missing and the server unreachable (offline): :class:`WeightsUnavailable`, one line
    naming the URL to fetch and the path to put it at, raised before anything is created
    or printed -- torch's own downloader creates the cache folders and announces the
    download before it finds out that there is no network. The download checks the
    sha256 prefix that the file name carries (``vgg16-397923af.pth``)."""
    path = hub_checkpoint_path(arch)
    if os.path.isfile(path):
        return path
    url = _URLS[arch]
    why = _unreachable(url, timeout)
    if why is not None:
        raise WeightsUnavailable(
            f"ImageNet {arch} weights are not in torch's cache and cannot be downloaded ({why}): fetch {url} "
            f"and put it at {path}, or use random weights (--feature-weights random) or a weights file", why)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    # stderr: stdout carries only tables and paths.
    print(f"downloading ImageNet {arch} weights: {url} -> {path}", file=sys.stderr, flush=True)
    sha_prefix = re.search(r"-([0-9a-f]{8,})\.", os.path.basename(path))
    torch.hub.download_url_to_file(url, path, hash_prefix=sha_prefix.group(1) if sha_prefix else None,
                                   progress=sys.stderr.isatty())
    return path


def require_feature_weights(weights: str, archs: Iterable[str]) -> None:
    """Before any training: with ``weights="imagenet"``, the ImageNet weights of every
    VGG in ``archs`` (those the run builds) are in torch hub's cache, or downloaded now;
    offline and missing, :class:`WeightsUnavailable` (one line, nothing created). Other
    ``weights`` need nothing here: ``auto`` falls back to random weights, with a warning,
    when it meets the trial."""
    if _parse_weights(weights)[0] != "imagenet":
        return
    for arch in dict.fromkeys(a for a in archs if a in ARCHS):
        try:
            imagenet_weights_file(arch)
        except FeatureWeightsError:  # offline: already says what to fetch and where
            raise
        except Exception as exc:  # a download that broke off, a checksum that differs
            raise _imagenet_failed(arch, exc) from None


def _imagenet_failed(arch: str, exc: BaseException) -> FeatureWeightsError:
    return FeatureWeightsError(
        f"cannot load ImageNet {arch} weights ({type(exc).__name__}: {' '.join(str(exc).split())}); "
        f"put torchvision's file at {hub_checkpoint_path(arch)} (from {_URLS[arch]}) or use weights=random / a path")


def _imagenet_state_dict(arch: str) -> dict[str, torch.Tensor]:
    """torchvision's ImageNet state_dict of ``arch``: from the hub cache, downloaded there
    first when missing (:func:`imagenet_weights_file`; offline: :class:`WeightsUnavailable`)."""
    return _read_weights_file(imagenet_weights_file(arch))


def _read_weights_file(path: str):
    """``torch.load(weights_only=True)``; a refusal (a file that holds code, a corrupt or
    empty one) is one line naming the file -- never torch's advice to turn the check off."""
    try:
        return load_torch_file(path, what="feature weights file")
    except CheckpointError as exc:
        raise FeatureWeightsError(str(exc)) from None


def _features_only(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Keep the convolutional part: ``features.{i}.*`` -> ``{i}.*``; ``{i}.*`` kept."""
    if any(k.startswith("features.") for k in state):
        return {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}
    return dict(state)


def _parse_weights(weights: str) -> tuple[str, int | str | None]:
    """``weights`` -> (mode, arg): ("imagenet", None), ("random", seed), ("file", path), ("auto", None)."""
    if not isinstance(weights, str) or not weights:
        raise FeatureWeightsError(f"feature weights must be auto, imagenet, random, random:SEED or a path; got {weights!r}")
    low = weights.lower()
    if low in ("auto", "imagenet"):
        return low, None
    if low == "random":
        return "random", 0
    if low.startswith("random:"):
        try:
            return "random", int(low.split(":", 1)[1])
        except ValueError:
            raise FeatureWeightsError(f"feature weights {weights!r}: the seed after 'random:' must be an integer") from None
    return "file", os.path.abspath(os.path.expanduser(weights))


def check_feature_weights(weights: str) -> str:
    """Refuse a ``--feature-weights`` value that is none of ``auto``, ``imagenet``,
    ``random``, ``random:SEED`` or an existing file (a typo such as ``imagnet`` would
    otherwise be taken as a path and fail only once a trial starts). Returns it unchanged."""
    mode, arg = _parse_weights(weights)
    if mode == "file" and not os.path.isfile(str(arg)):
        raise FeatureWeightsError(f"unknown feature weights {weights!r}: not auto, imagenet, random, random:SEED, "
                                  f"nor an existing file")
    return weights


class VGGFeatures(nn.Module):
    """Frozen VGG16/VGG19 convolutional trunk returning named intermediate layers.

    ``extract(x, layers)`` takes ``x`` of shape ``(N, 1|3, H, W)`` in ``[0, 1]`` and returns
    ``{layer: (N, C_l, H / s_l, W / s_l)}`` for every requested layer in one forward pass,
    which stops at the deepest requested layer. Gradients flow to ``x`` (the losses need
    them) but never into the frozen weights. The module stays in eval mode even when a
    parent calls ``.train()`` (VGG has no dropout/BN in its trunk today, but a
    train-mode feature network is never what a loss wants).
    """

    def __init__(self, arch: str = "vgg16", weights: str = "random") -> None:
        super().__init__()
        check_arch(arch)
        self.arch = arch
        layers: list[nn.Module] = []
        in_ch = 3
        for n_conv, ch in zip(_BLOCKS[arch], _CHANNELS):
            for _ in range(n_conv):
                # skip_init: no default init, so building a loss never draws from (or
                # advances) the global RNG -- every loss must see the same model init.
                # inplace=False: a conv output requested by name must survive its ReLU
                # (extract() rectifies in place itself when that output is not asked for).
                conv = nn.utils.skip_init(nn.Conv2d, in_ch, ch, kernel_size=3, padding=1)
                layers += [conv, nn.ReLU(inplace=False)]
                in_ch = ch
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        self.features = nn.Sequential(*layers)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.weights_used = ""
        self._load(weights)
        self.requires_grad_(False)
        super().train(False)

    # ------------------------------------------------------------------ weights
    def _load(self, weights: str) -> None:
        mode, arg = _parse_weights(weights)
        if mode == "random":
            self._init_random(int(arg))  # type: ignore[arg-type]
        elif mode == "file":
            self._load_file(str(arg))
        elif mode == "imagenet":
            try:
                state = _imagenet_state_dict(self.arch)
            except FeatureWeightsError:  # offline, a file that is not a state_dict: says what to do
                raise
            except Exception as exc:  # a download that broke off, a checksum that differs...
                raise _imagenet_failed(self.arch, exc) from None
            self._load_state(state, "torchvision ImageNet weights")
            self.weights_used = "imagenet"
        else:  # auto
            try:
                state = _imagenet_state_dict(self.arch)
                self._load_state(state, "torchvision ImageNet weights")
                self.weights_used = "imagenet"
            except Exception as exc:
                why = (f"not in torch's cache; download: {exc.reason}" if isinstance(exc, WeightsUnavailable)
                       else f"{type(exc).__name__}: {exc}")
                msg = (
                    f"ImageNet {self.arch} weights unavailable ({why}); "
                    f"using RANDOM {self.arch} features (seed 0) -- feature-loss numbers are NOT comparable "
                    f"to ImageNet ones. To use ImageNet weights, put {os.path.basename(_URLS[self.arch])} "
                    f"(from {_URLS[self.arch]}) in {os.path.dirname(hub_checkpoint_path(self.arch))}/"
                )
                # One channel only: a log record as well would print the message twice.
                warnings.warn(msg, RandomFeaturesWarning, stacklevel=3)
                self._init_random(0)

    def _init_random(self, seed: int) -> None:
        # torchvision's VGG init for convolutions, from a private generator: the same seed
        # gives the same network on every machine without touching torch's global RNG.
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for m in self.features:
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu", generator=gen)
                    nn.init.zeros_(m.bias)
        self.weights_used = f"random(seed={seed})"

    def _load_file(self, path: str) -> None:
        if not os.path.isfile(path):
            raise FeatureWeightsError(
                f"feature weights file {path!r} does not exist (valid weights: auto, imagenet, random, random:SEED "
                f"or a path to a torchvision {self.arch} state_dict)"
            )
        state = _read_weights_file(path)
        if not isinstance(state, dict):
            raise FeatureWeightsError(f"feature weights file {path!r} holds a {type(state).__name__}, not a state_dict")
        self._load_state(state, f"file {path!r}")
        self.weights_used = f"file:{path}"

    def _load_state(self, state: dict[str, torch.Tensor], source: str) -> None:
        feats = _features_only(state)
        own = self.features.state_dict()
        missing = sorted(set(own) - set(feats))
        unexpected = sorted(set(feats) - set(own))
        wrong = [k for k in own if k in feats and tuple(feats[k].shape) != tuple(own[k].shape)]
        if missing or unexpected or wrong:
            parts = []
            if missing:
                parts.append(f"missing keys {missing[:4]}{'...' if len(missing) > 4 else ''}")
            if unexpected:
                parts.append(f"unexpected keys {unexpected[:4]}{'...' if len(unexpected) > 4 else ''}")
            if wrong:
                parts.append(f"shape mismatch at {wrong[:4]}")
            raise FeatureWeightsError(
                f"{source} does not match a torchvision {self.arch} (features.{{i}}.weight/bias): " + "; ".join(parts)
            )
        self.features.load_state_dict(feats)

    # ------------------------------------------------------------------ modes
    def train(self, mode: bool = True) -> "VGGFeatures":
        """Ignore ``mode``: a loss network is always in eval mode."""
        return super().train(False)

    # ------------------------------------------------------------------ forward
    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """``[0, 1]`` images (N, 1|3, H, W) -> ImageNet-normalised (N, 3, H, W)."""
        if x.dim() != 4 or x.shape[1] not in (1, 3):
            raise ValueError(f"expected images of shape (N, C, H, W) with C in {{1, 3}}; got {tuple(x.shape)}")
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)

    def extract(self, x: torch.Tensor, layers: Iterable[str]) -> dict[str, torch.Tensor]:
        """Return ``{layer: features}`` for ``layers`` from one pass over ``x`` in [0, 1]."""
        layers = check_layers(self.arch, layers)
        param = self.features[0].weight
        if param.device != x.device:
            self.to(x.device)  # follow the input (moves the shared network for every sharer)
        if x.dtype != param.dtype:
            # Parameters define the compute dtype (autocast still lowers convs to bf16).
            x = x.to(param.dtype)
        wanted = {LAYER_INDEX[self.arch][l]: l for l in layers}
        last = max(wanted)
        out: dict[str, torch.Tensor] = {}
        h = self.normalize(x)
        for i, module in enumerate(self.features):
            if isinstance(module, nn.ReLU) and i - 1 not in wanted:
                # Rectify the convolution's output in place unless it was asked for by
                # name (a conv's backward needs its input, not its output): one tensor
                # fewer per layer, as in torchvision's own VGG.
                h = torch.relu_(h)
            else:
                h = module(h)
            if i in wanted:
                out[wanted[i]] = h
            if i == last:
                break
        return {l: out[l] for l in layers}

    def forward(self, x: torch.Tensor, layers: Iterable[str]) -> dict[str, torch.Tensor]:
        return self.extract(x, layers)

    def extra_repr(self) -> str:
        return f"arch={self.arch!r}, weights_used={self.weights_used!r}"


# ---------------------------------------------------------------------- shared cache
_CACHE: dict[tuple[str, str], VGGFeatures] = {}


def _cache_key(arch: str, weights: str) -> tuple[str, str]:
    mode, arg = _parse_weights(weights)
    if mode == "random":
        return arch, f"random:{arg}"
    if mode == "file":
        return arch, f"file:{arg}"
    return arch, mode


def get_feature_extractor(arch: str = "vgg16", weights: str = "auto") -> VGGFeatures:
    """The shared frozen extractor for (arch, weights); built on first request.

    ``auto`` is resolved once per process (one warning), then cached under both ``auto``
    and what it resolved to, so ``auto`` and ``random`` share one network when offline.
    """
    check_arch(arch)
    key = _cache_key(arch, weights)
    if key not in _CACHE:
        if key[1] == "auto" and (arch, "imagenet") in _CACHE:
            _CACHE[key] = _CACHE[(arch, "imagenet")]
        else:
            net = VGGFeatures(arch, weights)
            _CACHE[key] = net
            if key[1] == "auto":  # share with explicit requests for what auto resolved to
                _CACHE.setdefault((arch, "imagenet" if net.weights_used == "imagenet" else "random:0"), net)
    return _CACHE[key]


def clear_feature_cache() -> None:
    """Forget every cached extractor (tests; or to re-resolve ``auto`` after a download)."""
    _CACHE.clear()


__all__ = [
    "ARCHS",
    "FeatureLoss",
    "at_least_float32",
    "check_feature_weights",
    "check_layer_weights",
    "FeatureWeightsError",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "LAYER_INDEX",
    "RandomFeaturesWarning",
    "VGGFeatures",
    "check_layers",
    "clear_feature_cache",
    "get_feature_extractor",
    "hub_checkpoint_path",
    "imagenet_weights_file",
    "require_feature_weights",
    "WeightsUnavailable",
    "shared_features",
    "layer_stride",
]


# ---------------------------------------------------------------------- loss base
class FeatureLoss(Loss):
    """Base of the losses that compare VGG features: holds the shared extractor as the
    submodule ``extractor``, the validated ``layers``, and reports ``feature_weights``.

    A subclass that sets ``shares_features = True`` splits its formula in two so that a
    :class:`~cvloss.losses.spec.CombinedLoss` can run the network once for all its terms:

    * ``check_inputs(pred, target, weight)`` -- the shape checks; returns the weight map
      in the form the formula wants (or ``None``);
    * ``loss_from_features(fp, ft, weight)`` -- the value from ``fp`` / ``ft``, dicts
      ``{layer: (N, C_l, H_l, W_l)}`` of the prediction (with graph) and of the target
      (computed under ``no_grad``), holding at least ``self.layers``.

    ``forward`` is then the same for every such loss: check, one pass over ``pred``, one
    ``no_grad`` pass over ``target``, formula. Losses that leave ``shares_features``
    ``False`` (``topo``, which feeds per-class masks to VGG) write their own ``forward``.
    """

    shares_features: bool = False

    def _init_features(self, arch: str, weights: str, layers: Iterable[str]) -> None:
        self.arch = arch
        self.layers = check_layers(arch, layers)
        self.extractor = get_feature_extractor(arch, weights)

    @property
    def feature_weights(self) -> str | None:
        return self.extractor.weights_used

    def check_inputs(self, pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor | None:
        raise NotImplementedError

    def loss_from_features(
        self, fp: dict[str, torch.Tensor], ft: dict[str, torch.Tensor], weight: torch.Tensor | None
    ) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        if not self.shares_features:
            raise NotImplementedError(f"{type(self).__name__} must implement forward()")
        w = self.check_inputs(pred, target, weight)
        fp = self.extractor.extract(pred, self.layers)
        with torch.no_grad():  # the target is a constant: no graph for its pass
            ft = target_features(self.extractor, target, self.layers)
        return self.loss_from_features(fp, ft, w)


# id(target) -> (a weak reference to that target, {(id(net), layers, version, autocast):
# (a weak reference to net, features)}); both references are checked on every lookup, so
# an id reused by another tensor or another network after a free is never served.
_constant_memo: dict[int, tuple[Any, dict[tuple, tuple[Any, dict[str, torch.Tensor]]]]] = {}


def mark_constant(*tensors: torch.Tensor) -> None:
    """Declare ``tensors`` fixed targets (style's content and style images): their frozen
    network features are computed once per (network, layers, autocast) and reused every
    step, until the tensor is modified in place (its version changes) or freed."""
    import weakref

    for t in tensors:
        _constant_memo[id(t)] = (weakref.ref(t), {})


def target_features(net: "VGGFeatures", target: torch.Tensor, layers) -> dict[str, torch.Tensor]:
    """``net.extract(target, layers)`` (call under ``no_grad``), memoised for a tensor
    :func:`mark_constant` declared fixed; any other target is computed as usual."""
    import weakref

    entry = _constant_memo.get(id(target))
    if entry is None or entry[0]() is not target:
        if entry is not None:  # the marked tensor is gone and its id was reused
            _constant_memo.pop(id(target), None)
        return net.extract(target, layers)
    memo = entry[1]
    key = (id(net), tuple(layers), target._version, torch.is_autocast_enabled())
    hit = memo.get(key)
    if hit is None or hit[0]() is not net:
        hit = memo[key] = (weakref.ref(net), net.extract(target, tuple(layers)))
    return hit[1]


def shared_features(
    terms: Iterable[FeatureLoss], pred: torch.Tensor, target: torch.Tensor
) -> dict[int, tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]]:
    """Run each distinct extractor of ``terms`` once on ``pred`` and once on ``target``.

    The terms are grouped by extractor (one per (arch, weights), see
    :func:`get_feature_extractor`); each group asks for the union of its terms' layers, so
    the pass stops at the deepest layer any of them needs. The target pass runs under
    ``no_grad``. Returns ``{id(extractor): (pred_features, target_features)}``.

    Cost: ``perceptual`` (relu2_2) + ``texture`` (relu1_1, relu2_1, relu3_1) on one
    network is one pass to relu3_1 per image instead of a pass to relu2_2 plus one to
    relu3_1; terms on different networks (VGG16 and VGG19) cannot share.
    """
    groups: dict[int, tuple[VGGFeatures, dict[str, None]]] = {}
    for t in terms:
        net, layers = groups.setdefault(id(t.extractor), (t.extractor, {}))
        layers.update(dict.fromkeys(t.layers))  # ordered union
    out = {}
    for key, (net, layers) in groups.items():
        fp = net.extract(pred, tuple(layers))
        with torch.no_grad():
            ft = target_features(net, target, tuple(layers))
        out[key] = (fp, ft)
    return out


def at_least_float32(t: torch.Tensor) -> torch.Tensor:
    """``t`` in float32 if it is half/bfloat16 (autocast outputs), else unchanged (float64 stays)."""
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


def check_layer_weights(layers: tuple[str, ...], layer_weights: tuple[float, ...] | None, default: float) -> tuple[float, ...]:
    """``layer_weights`` as floats, one per layer (``default`` each when ``None``)."""
    if layer_weights is None:
        return tuple(default for _ in layers)
    lw = tuple(float(w) for w in layer_weights)
    if len(lw) != len(layers):
        raise ValueError(f"give one layer weight per layer: {len(layers)} layers {list(layers)} but {len(lw)} weights")
    if any(w < 0 for w in lw):
        raise ValueError(f"layer weights must be >= 0; got {list(lw)}")
    return lw
