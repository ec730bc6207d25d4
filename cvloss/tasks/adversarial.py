"""One adversarial stepper for every task that trains a discriminator (sr, translate, gan).

:class:`AdversarialStepper` owns what a GAN step repeats, whatever the objective:
``n_critic`` D steps per G step, D frozen during the G step, weight clipping after each D
step, the gradient penalty's ε generator (task state: resume-exact) and the update
counts. The task supplies how fakes are made, G's loss, and the (critic, real, fake)
pairs D sees. Schedules: :meth:`~AdversarialStepper.update` (groups of ``n_critic`` data
batches: SRGAN, CycleGAN) and :meth:`~AdversarialStepper.critic_first` (``n_critic`` D
steps then one G step: the toy GAN). Both return ``{"loss": G's, "d_loss": D's}``. One
training step is one generator update, so budgets count G updates for every objective.

:func:`policy_optimizer` applies :data:`OPTIMIZER_POLICY`: ``equal`` (the task's Adam for
every objective) or ``paper`` (each objective's ``paper_optimizer``).
Rationale and details: ``docs/tasks/adversarial.md``.
"""
from __future__ import annotations

from typing import Any, Callable, Iterator

import torch
from torch import nn

from cvloss.losses.base import AdversarialLoss, Loss
from cvloss.settings import Choice
from cvloss.tasks.base import Plan, Task

Pairs = list[tuple[nn.Module, torch.Tensor, torch.Tensor]]  # (critic, real, fake) of one D loss
Critics = list[nn.Module]

OPTIMIZER_POLICY = Choice("equal", "paper", help="equal: the task's Adam for every objective; "
                                                 "paper: each objective's paper optimiser")
CRITIC_STREAM = 0xC817  # offset of the seed of the extra critic batches' generator


def policy_optimizer(policy: str, objective: AdversarialLoss | None,
                     adam: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """``(torch.optim name, kwargs)`` for G and D under ``policy``: ``adam`` (the task's
    Adam arguments, ``{"lr": ..., "betas": (b1, b2)}``) for ``equal``, for an objective
    whose paper gives no single setting, and without an objective; the objective's
    ``paper_optimizer`` for ``paper``."""
    if policy not in OPTIMIZER_POLICY.choices:
        raise ValueError(f"optimizer policy must be one of {', '.join(OPTIMIZER_POLICY.choices)}; got {policy!r}")
    spec = dict(objective.paper_optimizer) if policy == "paper" and objective and objective.paper_optimizer else \
        {"name": "adam", **adam}
    return spec.pop("name"), spec


def _detach(x: Any) -> Any:
    return tuple(t.detach() for t in x) if isinstance(x, tuple) else x.detach()


class AdversarialStepper:
    """``term``: the plan's (weight, objective), or None (then only G steps are made);
    ``penalty_seed``: seed of the penalty's ε stream (the same for every loss). Each
    schedule takes ``critics``: the discriminators, frozen during G steps and clipped
    after D steps."""

    def __init__(self, term: tuple[float, AdversarialLoss] | None, device: torch.device, penalty_seed: int) -> None:
        self.weight, self.objective = term if term else (0.0, None)
        self.n_critic = self.objective.n_critic if self.objective else 1
        self.penalty_gen = torch.Generator(device=device).manual_seed(penalty_seed)
        if hasattr(self.objective, "generator"):  # WGAN-GP's ε from here, never the global RNG
            self.objective.generator = self.penalty_gen
        self.batches = 0  # batches seen (alternate) or steps made (critic_first)
        self.g_updates = 0
        self.d_updates = 0
        self.last_g = torch.zeros((), device=device)

    # ------------------------------------------------------------------ the two updates
    def generator_step(self, opt: torch.optim.Optimizer, critics: Critics,
                       loss: Callable[[], torch.Tensor]) -> torch.Tensor:
        """Minimise ``loss()`` over G with every critic frozen (no D gradients)."""
        params = [p for d in critics for p in d.parameters()]
        for p in params:
            p.requires_grad_(False)
        try:
            total = loss()
            opt.zero_grad(set_to_none=True)
            total.backward()
            opt.step()
        finally:
            for p in params:
                p.requires_grad_(True)
        self.g_updates += 1
        self.last_g = total.detach()
        return self.last_g

    def critic_step(self, opt: torch.optim.Optimizer, critics: Critics, pairs: Pairs) -> torch.Tensor:
        """One D step on Σ d_loss(D(real), D(fake)) + penalty(D, real, fake) over ``pairs``,
        then clip every critic's weights (a no-op except for ``wgan``)."""
        obj = self.objective
        total = None
        for critic, real, fake in pairs:
            for part in (obj.d_loss(critic(real), critic(fake)), obj.penalty(critic, real, fake)):
                total = part if total is None else total + part
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()
        self.d_updates += 1
        for critic in critics:
            obj.clip_weights(critic)
        return total.detach()

    # ------------------------------------------------------------------ schedules
    def alternate(self, optimizers: dict, critics: Critics, generate: Callable[[], Any], g_loss: Callable[[Any], torch.Tensor],
                  d_pairs: Callable[[Any], Pairs]) -> dict[str, torch.Tensor]:
        """One batch: a G step on ``g_loss(generate())`` every ``n_critic``-th batch (the
        adversarial part ``weight · objective.g_loss(...)`` is G's own to add), then a D
        step on ``d_pairs(fakes)`` with the fakes detached (made under no_grad when there
        was no G step). Without an objective: G steps only."""
        g_turn = self.batches % self.n_critic == 0
        self.batches += 1
        fakes = None
        if g_turn:
            made: dict[str, Any] = {}

            def loss() -> torch.Tensor:
                made["fakes"] = generate()
                return g_loss(made["fakes"])

            self.generator_step(optimizers["g"], critics, loss)
            fakes = _detach(made["fakes"])
        if self.objective is None:
            return {"loss": self.last_g}
        if fakes is None:
            with torch.no_grad():
                fakes = generate()
        return {"loss": self.last_g, "d_loss": self.critic_step(optimizers["d"], critics, d_pairs(fakes))}

    def update(self, optimizers: dict, critics: Critics, group: list[Any],
               closures: Callable[[Any], tuple[Callable, Callable, Callable]]) -> dict[str, torch.Tensor]:
        """One generator update of the alternating schedule: :meth:`alternate` on each of
        the ``n_critic`` data batches of ``group`` (from :meth:`batch_groups`), i.e. a G
        step and a D step on ``group[0]``, then a D step on each further batch.
        ``closures(batch)`` gives that batch's ``(generate, g_loss, d_pairs)``. Returns
        the last batch's ``{"loss", "d_loss"}``."""
        if len(group) != self.n_critic or self.batches % self.n_critic:
            raise ValueError(f"a generator update takes a group of n_critic = {self.n_critic} batches starting on a G "
                             f"turn; got {len(group)} after {self.batches} batches")
        for batch in group:
            out = self.alternate(optimizers, critics, *closures(batch))
        return out

    def batch_groups(self, batches_from: Callable[[torch.Generator], Iterator[Any]],
                     generator: torch.Generator) -> Iterator[list[Any]]:
        """The alternating schedule's steps: lists of ``n_critic`` batches, one list per
        generator update. ``batches_from(g)`` yields one data epoch of batches drawn from
        ``g``. The first batch of every group -- the one G steps on -- comes from
        ``generator`` itself, so the k-th G step sees the same batch for every objective
        (whatever its n_critic) and n_critic = 1 reproduces the plain batch stream. The
        n_critic − 1 further batches (critic steps only, on fresh real data as in Arjovsky
        et al., Algorithm 1) are consecutive data epochs drawn from a second generator
        seeded from ``generator``'s seed: a function of (seed, epoch), resume-exact."""
        main = batches_from(generator)
        if self.n_critic == 1:
            yield from ([b] for b in main)
            return
        extra_gen = torch.Generator().manual_seed((generator.initial_seed() + CRITIC_STREAM) % 2**63)

        def extra() -> Iterator[Any]:
            while True:  # as many data epochs as the critic steps need
                yield from batches_from(extra_gen)

        more = extra()
        for first in main:
            yield [first] + [next(more) for _ in range(self.n_critic - 1)]

    def critic_first(self, optimizers: dict, critics: Critics, critic_pairs: Callable[[int], Pairs],
                     g_loss: Callable[[], torch.Tensor]) -> dict[str, torch.Tensor]:
        """``n_critic`` D steps on ``critic_pairs(k)`` (k = 0 .. n_critic - 1), then one G
        step on ``g_loss()``."""
        for k in range(self.n_critic):
            d = self.critic_step(optimizers["d"], critics, critic_pairs(k))
        self.batches += 1
        return {"loss": self.generator_step(optimizers["g"], critics, g_loss), "d_loss": d}

    def counts(self) -> dict[str, int]:
        """The trial's update counts for its summary: G steps and D (critic) steps."""
        return {"generator_updates": self.g_updates, "discriminator_updates": self.d_updates}

    def adversarial_loss(self, critic: nn.Module, fake: torch.Tensor) -> torch.Tensor:
        """G's adversarial term ``weight · g_loss(D(fake))``."""
        return self.weight * self.objective.g_loss(critic(fake))

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        return {"batches": self.batches, "g_updates": self.g_updates, "d_updates": self.d_updates,
                "last_g": self.last_g.cpu(), "penalty_gen": self.penalty_gen.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        # A checkpoint without d_updates predates updates counted per generator step (its
        # batches meant something else): KeyError -> the trainer refuses it as not fitting.
        self.batches, self.g_updates, self.d_updates = (int(state[k]) for k in ("batches", "g_updates", "d_updates"))
        self.last_g = state["last_g"].to(self.last_g.device)
        self.penalty_gen.set_state(state["penalty_gen"])


class AdversarialTask(Task):
    """A task with an adversarial slot (sr, translate, gan): :meth:`plan` builds the
    trial's :class:`AdversarialStepper` (``penalty_seed``: its ε stream, the same for every
    loss); its state is task state (resume-exact) and its update counts and the
    ``optimizer`` policy go to summary.json."""

    penalty_seed: int = 0
    stepper: AdversarialStepper | None = None

    def plan(self, loss: Loss) -> Plan:
        plan = super().plan(loss)
        self.stepper = AdversarialStepper(plan.adversarial, self.device, self.penalty_seed)
        return plan

    def state_dict(self) -> dict:
        state = super().state_dict()
        return {**state, "stepper": self.stepper.state_dict()} if self.stepper else state

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        if self.stepper and state:
            self.stepper.load_state_dict(state["stepper"])

    def summary_extras(self) -> dict[str, Any]:
        """The trial's ``generator_updates`` and ``discriminator_updates`` (exact across a
        resume: they are stepper state) and its ``optimizer`` policy (``equal`` / ``paper``)."""
        if self.stepper is None:
            return super().summary_extras()
        return {**super().summary_extras(), **self.stepper.counts(), "optimizer": self.params.get("optimizer")}
