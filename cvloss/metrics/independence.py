"""Which network a feature metric measures with, and whether a loss term uses the same one.

A feature metric that runs the network a loss term was trained through partly measures
the loss itself ("perceptual leads feature distance" because both are VGG16 with the same
weights, one block apart). Each task declares its feature metrics as :class:`FeatureNet`
(network, layers, weights); :func:`loss_feature_nets` lists the networks of a built loss's
terms, and :func:`dependence` names the terms a metric shares a network with.

Rule: a metric and a term share a network when the architecture and the weights are the
same, whatever the layers -- the layers of one VGG are prefixes of each other (relu3_3 is
computed from relu2_2), so disjoint layer lists of one network are not independent.
Different weights of one architecture (random vs ImageNet) are different networks.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from torch import nn

__all__ = ["FeatureNet", "dependence", "describe_feature_metrics", "describe_metric", "loss_feature_nets"]


@dataclass(frozen=True)
class FeatureNet:
    """A feature network as used by one metric or one loss term."""

    arch: str  # "vgg16", "vgg19", "alexnet", "inception-v3 (TF 2015-12-05)"
    layers: tuple[str, ...]
    weights: str  # as the extractor reports it: "imagenet", "random(seed=0)", "file:/path", ...

    def describe(self) -> str:
        return f"{self.arch} {','.join(self.layers)}, weights {self.weights}"

    def shares_network(self, other: "FeatureNet") -> bool:
        return self.arch == other.arch and self.weights == other.weights


def loss_feature_nets(loss: nn.Module) -> list[tuple[str, FeatureNet]]:
    """``(term name, network)`` for every term of ``loss`` that runs a feature network."""
    terms = loss.weighted_terms() if hasattr(loss, "weighted_terms") else [(1.0, loss)]
    out = []
    for _, term in terms:
        extractor = getattr(term, "extractor", None)
        if extractor is not None:
            layers = tuple(getattr(term, "layers", ()) or ())
            out.append((term.name, FeatureNet(extractor.arch, layers, extractor.weights_used)))
    return out


def dependence(metric: FeatureNet, losses: Iterable[nn.Module]) -> list[str]:
    """Sorted names of the terms (over ``losses``) that share ``metric``'s network."""
    return sorted({name for loss in losses for name, net in loss_feature_nets(loss) if metric.shares_network(net)})


def describe_metric(name: str, net: FeatureNet, shared_with: Iterable[str], scope: str) -> str:
    """``feat_dist: vgg16 relu3_3, weights random(seed=0) -- NOT independent: perceptual
    uses the same vgg16 and weights`` (or ``-- independent of every <scope> loss``)."""
    shared = sorted(shared_with)
    if shared:
        return (f"{name}: {net.describe()} -- NOT independent: {', '.join(shared)} "
                f"{'uses' if len(shared) == 1 else 'use'} the same {net.arch} and weights")
    return f"{name}: {net.describe()} -- independent of every {scope} loss"


def describe_feature_metrics(metrics: dict[str, tuple[FeatureNet, tuple[str, ...]]], scope: str,
                             notes: dict[str, str] | None = None) -> str:
    """One clause per feature network (:func:`describe_metric`; metrics on the same network
    and notes share one, ``fid/kid: ...``), each with its note (why n/a)."""
    notes = notes or {}
    groups: dict[tuple, list[str]] = {}
    for n, (net, shared) in metrics.items():
        groups.setdefault((net, tuple(sorted(shared)), notes.get(n) or ""), []).append(n)
    return "; ".join(describe_metric("/".join(names), net, shared, scope) + (f" ({note})" if note else "")
                     for (net, shared, note), names in groups.items())
