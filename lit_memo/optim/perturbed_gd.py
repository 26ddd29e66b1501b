"""Perturbed gradient descent (Jin et al. 2017, Algorithm 2), as used by Ge, Wang, Zhao (2019) App. B.

Gradient steps of size ``eta = c / l``. When the gradient is small (``||grad|| <= g_thres``)
and no perturbation happened in the last ``t_thres`` steps, the current point x~ is remembered
and a perturbation drawn uniformly from the ball of radius r (over all parameters together) is
added. If ``t_thres`` steps after a perturbation the objective has fallen by less than
``f_thres`` below f(x~), x~ is an approximate second-order stationary point: the parameters are
set back to x~ and the algorithm stops.

The loss comes from the closure, as for ``torch.optim.LBFGS``: ``step(closure)`` evaluates it at
the current point (with the gradients). Lightning's automatic optimization always passes one, so
the optimizer works from a config (``model.init_args.optimizer``) as any other. Once stopped,
``step`` still runs the closure (Lightning expects it) but moves nothing; the
:class:`lit_memo.callbacks.PerturbedGDCallback` (attached by lit_memo's modules, add it yourself
elsewhere) ends the fit and logs ``pgd/perturbations`` and why it stopped.

Under DDP (several processes, one ``torch.distributed`` group) every rank takes the same
decisions on the same numbers, so the run equals the one-process run: DDP has already averaged
the gradients (the same on every rank, so is their norm), the objective's value for the stopping
rule is the mean of the ranks' closure losses (one all-reduce per evaluation: the whole batch's
loss when the ranks' losses are weighted as DDP's gradient average assumes), and the
perturbations come from a generator seeded alike on every rank.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass
from typing import Callable, Iterable, Optional

import torch
import torch.distributed as dist
from torch.optim import Optimizer

THEORY_ARGS = ("l", "rho", "eps", "delta_f")
DIRECT_ARGS = ("lr", "radius", "g_thres", "f_thres", "t_thres")


@dataclass(frozen=True)
class PGDConstants:
    """The constants of Jin et al. (2017) Algorithm 2 (PAPERS.md, row G)."""

    lr: float  # eta = c / l
    radius: float  # r = sqrt(c) / chi^2 * eps / l
    g_thres: float  # sqrt(c) / chi^2 * eps
    f_thres: float  # c / chi^3 * sqrt(eps^3 / rho)
    t_thres: float  # chi / c^2 * l / sqrt(rho eps); the algorithm waits ceil(t_thres) steps
    chi: Optional[float] = None  # 3 max(log(d l Delta_f / (c eps^2 delta)), 4)


def pgd_constants(dim: int, l: float, rho: float, eps: float, delta_f: float, c: float = 1.0,
                  delta: float = 0.1) -> PGDConstants:
    """Jin et al.'s constants from (d, l, rho, eps, c, delta, Delta_f); log is the natural log.

    d: number of parameters; l: gradient Lipschitz constant; rho: Hessian Lipschitz constant;
    eps: target gradient norm; c: the step constant (c <= c_max, an absolute constant);
    delta: failure probability; delta_f: an upper bound on f(x0) - f*.
    """
    for name, value in (("dim", dim), ("l", l), ("rho", rho), ("eps", eps), ("delta_f", delta_f), ("c", c)):
        if not value > 0:
            raise ValueError(f"PerturbedGD: {name} must be > 0, got {value}")
    if not 0 < delta < 1:
        raise ValueError(f"PerturbedGD: delta (failure probability) must be in (0, 1), got {delta}")
    chi = 3 * max(math.log(dim * l * delta_f / (c * eps**2 * delta)), 4)
    return PGDConstants(
        lr=c / l,
        radius=math.sqrt(c) / chi**2 * eps / l,
        g_thres=math.sqrt(c) / chi**2 * eps,
        f_thres=c / chi**3 * math.sqrt(eps**3 / rho),
        t_thres=chi / c**2 * l / math.sqrt(rho * eps),
        chi=chi,
    )


class PerturbedGD(Optimizer):
    """Perturbed gradient descent of Jin et al. (2017); see the module docstring.

    Either the theory's inputs ``l, rho, eps, delta_f`` (with ``c``, ``delta``) are given and the
    constants derived by :func:`pgd_constants` (d = the number of parameters), or the five
    constants ``lr, radius, g_thres, f_thres, t_thres`` are given directly. A directly given
    constant overrides the derived one.

    Args:
        params: the parameters (one vector for the perturbation and the gradient norm).
        seed: seeds the perturbations' own generator (reproducible, independent of global RNG).

    After a stop, ``stopped`` is True, ``stop_reason`` says why and the parameters are the
    remembered point. ``perturbations`` counts the perturbations so far.
    """

    def __init__(self, params: Iterable, l: Optional[float] = None, rho: Optional[float] = None,
                 eps: Optional[float] = None, delta_f: Optional[float] = None, c: float = 1.0, delta: float = 0.1,
                 lr: Optional[float] = None, radius: Optional[float] = None, g_thres: Optional[float] = None,
                 f_thres: Optional[float] = None, t_thres: Optional[float] = None, seed: int = 0) -> None:
        super().__init__(params, {})
        dim = sum(p.numel() for group in self.param_groups for p in group["params"])
        theory = dict(l=l, rho=rho, eps=eps, delta_f=delta_f)
        direct = dict(lr=lr, radius=radius, g_thres=g_thres, f_thres=f_thres, t_thres=t_thres)
        if all(v is not None for v in theory.values()):
            derived = asdict(pgd_constants(dim, c=c, delta=delta, **theory))
        elif any(v is not None for v in theory.values()):
            missing = [k for k, v in theory.items() if v is None]
            raise ValueError(f"PerturbedGD: give all of {THEORY_ARGS} to derive the constants (missing: {missing}), "
                             f"or give {DIRECT_ARGS} directly")
        else:
            missing = [k for k, v in direct.items() if v is None]
            if missing:
                raise ValueError(f"PerturbedGD: missing {missing}: give {THEORY_ARGS} (the constants are derived "
                                 f"from them) or all of {DIRECT_ARGS}")
            derived = {"chi": None}
        derived.update({k: v for k, v in direct.items() if v is not None})
        for name in DIRECT_ARGS:
            if not derived[name] > 0:
                raise ValueError(f"PerturbedGD: {name} must be > 0, got {derived[name]}")
        self.constants = PGDConstants(**derived)
        for group in self.param_groups:  # the step is the constants' (schedulers and monitors read 'lr')
            if group.get("lr", self.constants.lr) != self.constants.lr:
                raise ValueError(f"PerturbedGD: a parameter group asks for lr={group['lr']}, but the step is "
                                 f"eta = c / l (or lr) = {self.constants.lr}; remove the group's lr (lr_hidden)")
            group["lr"] = self.constants.lr
        self.wait = math.ceil(self.constants.t_thres)
        self.generator = torch.Generator().manual_seed(seed)
        self.t = 0
        self.t_noise = -self.wait - 1
        self.remembered_loss: Optional[float] = None
        self.perturbations = 0
        self.stopped = False
        self.stop_reason: Optional[str] = None
        self._warned = False

    # -- helpers -----------------------------------------------------------------------------
    def _params(self) -> list[torch.Tensor]:
        return [p for group in self.param_groups for p in group["params"]]

    def _grad_norm(self) -> float:
        grads = [p.grad for p in self._params() if p.grad is not None]
        if not grads:
            return 0.0
        return float(torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads))))

    def _ball_sample(self, params: list[torch.Tensor]) -> list[torch.Tensor]:
        """Uniform in the ball of radius r in the space of all ``params`` together."""
        gaussian = [torch.randn(p.shape, generator=self.generator, dtype=torch.float64) for p in params]
        dim = sum(g.numel() for g in gaussian)
        norm = torch.linalg.vector_norm(torch.stack([g.norm() for g in gaussian]))
        u = torch.rand((), generator=self.generator, dtype=torch.float64)
        scale = self.constants.radius * u.pow(1.0 / dim) / norm
        return [(g * scale).to(device=p.device, dtype=p.dtype) for g, p in zip(gaussian, params)]

    @staticmethod
    def _evaluate(closure: Callable) -> torch.Tensor:
        """The objective at the current point (gradients left in ``.grad``), the same on every rank:
        the mean of the ranks' losses under several processes, as DDP averages their gradients."""
        with torch.enable_grad():
            loss = closure()
        if loss is None:
            raise RuntimeError("PerturbedGD: the closure returned no loss; it must return the objective's value "
                               "(in Lightning: training_step must return the loss)")
        loss = torch.as_tensor(loss).detach().clone()
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            dist.all_reduce(loss)
            loss /= dist.get_world_size()
        return loss

    # -- the algorithm -----------------------------------------------------------------------
    @torch.no_grad()
    def step(self, closure: Optional[Callable] = None) -> Optional[torch.Tensor]:
        """One iteration of Jin et al.'s Algorithm 2; ``closure`` (required) zeroes the gradients,
        evaluates the objective at the current point, back-propagates and returns it."""
        if closure is None:
            raise RuntimeError("PerturbedGD needs the loss for its stopping rule: call step(closure), as for LBFGS "
                               "(Lightning's automatic optimization does; with manual optimization pass a closure, "
                               "and keep steps_per_batch: 1 in lit_memo's modules)")
        loss = self._evaluate(closure)
        if self.stopped:
            if not self._warned:
                warnings.warn(f"PerturbedGD stopped ({self.stop_reason}); further steps do not move the parameters. "
                              "In Lightning add lit_memo.callbacks.PerturbedGDCallback to end the fit there.")
                self._warned = True
            return loss
        params = self._params()
        k = self.constants
        if self.t - self.t_noise > self.wait and self._grad_norm() <= k.g_thres:
            for p in params:
                self.state[p]["remembered"] = p.detach().clone()
            self.remembered_loss, self.t_noise = float(loss), self.t
            torch._foreach_add_(params, self._ball_sample(params))
            self.perturbations += 1
            loss = self._evaluate(closure)  # the gradient step below is taken at the perturbed point
        if self.t - self.t_noise == self.wait and float(loss) - self.remembered_loss > -k.f_thres:
            for p in params:
                p.copy_(self.state[p]["remembered"])
            self.stopped = True
            self.stop_reason = (f"second-order stationary: {self.wait} steps after perturbation "
                                f"{self.perturbations} the loss fell by {self.remembered_loss - float(loss):.3g} < "
                                f"f_thres = {k.f_thres:.3g}; parameters reset to the remembered point "
                                f"(loss {self.remembered_loss:.6g})")
            return loss
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        torch._foreach_add_(params, grads, alpha=-k.lr)
        self.t += 1
        return loss

    # -- checkpoints -------------------------------------------------------------------------
    def state_dict(self) -> dict:
        state = super().state_dict()
        state["pgd"] = {"t": self.t, "t_noise": self.t_noise, "remembered_loss": self.remembered_loss,
                        "perturbations": self.perturbations, "stopped": self.stopped,
                        "stop_reason": self.stop_reason, "generator": self.generator.get_state()}
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        state_dict = dict(state_dict)
        pgd = state_dict.pop("pgd", None)
        super().load_state_dict(state_dict)
        if pgd is not None:
            generator = pgd.pop("generator")
            self.generator.set_state(generator)
            for name, value in pgd.items():
                setattr(self, name, value)


def ge_smoothness(lam: float, f0: float, label_bound: float, input_norm: float = 1.0) -> dict[str, float]:
    """Theorem 4's recipe for Ge et al.'s regularized two-layer objective, our derivation.

    For ``f(W) = mean_j r_j^2 + lam/2 ||W||_F^2`` (r_j = f_W(x_j) - y_j, ``||x_j|| <= B``,
    ``|y_j| <= Y``) every iterate that keeps ``f <= f(W0)`` lies in the ball ``||W||_F <= Gamma``,
    ``Gamma^2 = 2 f(W0) / lam``; on it (bounding ``|sum_i a_i (w_i.x)(u_i.x)| <= ||Wx|| ||Ux||``)
    f is l-smooth and rho-Hessian-Lipschitz with

        l = 12 Gamma^2 B^4 + 4 Y B^2 + lam,      rho = 24 Gamma B^4,

    and ``Delta_f = f(W0)`` bounds ``f(W0) - f*`` (f >= 0). This is the structure of Ge et al.'s
    Lemma 5 (smoothness on a norm ball made bounded by the regularizer); its printed constants
    were lost in extraction, so these are ours, from the Hessian and third derivative above.
    """
    for name, value in (("lam", lam), ("f0", f0), ("input_norm", input_norm)):
        if not value > 0:
            raise ValueError(f"{name} must be > 0, got {value}")
    if not label_bound >= 0:
        raise ValueError(f"label_bound must be >= 0, got {label_bound}")
    gamma = (2 * f0 / lam) ** 0.5
    b2 = input_norm**2
    return {"l": 12 * gamma**2 * b2**2 + 4 * label_bound * b2 + lam, "rho": 24 * gamma * b2**2, "delta_f": f0,
            "gamma": gamma}
