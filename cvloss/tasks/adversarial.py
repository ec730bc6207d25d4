"""One adversarial stepper for every task that trains a discriminator (sr, translate, gan).

The stepper owns what a GAN step repeats, whatever the objective: ``n_critic`` (the
objective's discriminator steps per generator step), freezing D during the generator step
(no D gradients from G's loss), weight clipping after each D step (``clip_weights``: WGAN),
the gradient penalty and the generator of its ε (injected into the objective once, task
state: resume-exact), and the count of generator updates. The task supplies only what its
model does: how fakes are made, G's loss on them, and which (critic, real, fake) pairs D
sees. A new objective is one class in :mod:`cvloss.losses.adversarial` and no task edit.

Two schedules:

* :meth:`AdversarialStepper.alternate` (SRGAN, CycleGAN): every batch makes a D step and
  every ``n_critic``-th batch a G step first, so a critic step always sees fresh real data
  (Arjovsky et al. 2017, Algorithm 1, with the data loop outside);
* :meth:`AdversarialStepper.critic_first` (the toy GAN, whose data is infinite): one call
  = ``n_critic`` D steps, then one G step.

Both return ``{"loss": G's objective (of the latest G step), "d_loss": D's}``; the trainer
checks each for NaN/Inf and logs both.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from cvloss.losses.base import AdversarialLoss

Pairs = list[tuple[nn.Module, torch.Tensor, torch.Tensor]]  # (critic, real, fake) of one D loss
Critics = list[nn.Module]


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
        self.g_updates = self.d_updates = 0
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
        for critic in critics:
            obj.clip_weights(critic)
        self.d_updates += 1
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

    def critic_first(self, optimizers: dict, critics: Critics, critic_pairs: Callable[[int], Pairs],
                     g_loss: Callable[[], torch.Tensor]) -> dict[str, torch.Tensor]:
        """``n_critic`` D steps on ``critic_pairs(k)`` (k = 0 .. n_critic - 1), then one G
        step on ``g_loss()``."""
        for k in range(self.n_critic):
            d = self.critic_step(optimizers["d"], critics, critic_pairs(k))
        self.batches += 1
        return {"loss": self.generator_step(optimizers["g"], critics, g_loss), "d_loss": d}

    def adversarial_loss(self, critic: nn.Module, fake: torch.Tensor) -> torch.Tensor:
        """G's adversarial term ``weight · g_loss(D(fake))``."""
        return self.weight * self.objective.g_loss(critic(fake))

    def counts(self) -> dict[str, int]:
        """Optimiser updates made so far, for the trial's summary (equal generator updates
        are what makes adversarial objectives comparable at one budget)."""
        return {"generator_updates": self.g_updates, "discriminator_updates": self.d_updates}

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        return {"batches": self.batches, "g_updates": self.g_updates, "d_updates": self.d_updates,
                "last_g": self.last_g.cpu(),
                "penalty_gen": self.penalty_gen.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.batches, self.g_updates = int(state["batches"]), int(state["g_updates"])
        self.d_updates = int(state.get("d_updates", 0))
        self.last_g = state["last_g"].to(self.last_g.device)
        self.penalty_gen.set_state(state["penalty_gen"])
