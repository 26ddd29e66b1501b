"""A W&B workspace for lit_memo's metrics, built with ``wandb-workspaces`` (issue 12).

    python -m lit_memo.dashboard --entity E --project P [--name "lit_memo"]

Three sections, every panel against the GD step: training (``train/*``, ``val/*``,
``test/*``, perturbed GD's ``pgd/*``), certificates (``jacobian/*``: sigma_min(J) of Zhang
et al. Fig. 4 c-d and the PL view; ``hessian/*``: second-order stationarity in Ge et al.;
``ntk/*``: lazy training; ``theory/*``: the papers' width conditions) and constraints
(``constraint/*``: ball ratio, distance, active fraction, V's bounds). ``build_workspace`` needs no
network; only ``save`` talks to W&B.
"""

from __future__ import annotations

import sys
from typing import Optional

# Lightning's WandbLogger logs every row with this key and declares it the step metric of all
# others; lit_memo's modules and callbacks log at trainer.global_step, which counts GD steps.
STEP_KEY = "trainer/global_step"

# section -> panels; a panel is (title, y keys, log y) or (title, regex over keys, log y) when the
# keys depend on the run (constraint group names, the theory conditions)
SECTIONS: dict[str, list[tuple[str, list[str] | str, bool]]] = {
    "training": [
        ("training loss (and best so far)", ["train/loss", "train/loss_best"], True),
        ("training MSE, data term alone (Ge et al.'s quadratic nets)", ["train/mse"], True),
        ("perturbed GD: perturbations, stop (Ge et al. / Jin et al.)", r"^pgd(_\d+)?/", False),
        ("training accuracy", ["train/acc"], False),
        ("validation loss", ["val/loss"], True),
        ("validation accuracy", ["val/acc"], False),
        ("test loss", ["test/loss"], True),
        ("test accuracy", ["test/acc"], False),
    ],
    "certificates": [
        ("sigma_min(J)", ["jacobian/sigma_min"], True),
        ("sigma_max(J)", ["jacobian/sigma_max"], True),
        ("rank(J)", ["jacobian/rank"], False),
        ("condition number of J", ["jacobian/condition"], True),
        ("Hessian extreme eigenvalues", ["hessian/lambda_min", "hessian/lambda_max"], False),
        ("NTK drift ||K_t - K_0|| / ||K_0||", ["ntk/drift"], False),
        ("theory conditions (value, bound, holds)", r"^theory/.*", False),
    ],
    "constraints": [
        ("ball ratio ||W - W0||_F / r", r"^constraint/.*/ratio$", False),
        ("ball distance ||W - W0||_F", r"^constraint/.*/distance$", False),
        ("fraction of steps projected", r"^constraint/.*/active$", False),
        ("V: min |v_i|", ["constraint/outer/min_abs"], True),
        ("V: spread max|v| / min|v|", ["constraint/outer/spread"], True),
    ],
}


def panels():
    """Every panel as ``(section, title, keys_or_regex, log_y)``."""
    for section, items in SECTIONS.items():
        for title, keys, log_y in items:
            yield section, title, keys, log_y


def build_workspace(entity: str, project: str, name: str = "lit_memo"):
    """The workspace object (``wandb_workspaces.workspaces.Workspace``); nothing is sent."""
    import wandb_workspaces.reports.v2 as wr
    import wandb_workspaces.workspaces as ws

    sections = []
    for section, items in SECTIONS.items():
        plots = []
        for title, keys, log_y in items:
            if isinstance(keys, str):
                plots.append(wr.LinePlot(title=title, x=STEP_KEY, metric_regex=keys, log_y=log_y or None,
                                         title_x="GD step"))
            else:
                plots.append(wr.LinePlot(title=title, x=STEP_KEY, y=list(keys), log_y=log_y or None,
                                         title_x="GD step"))
        sections.append(ws.Section(name=section, panels=plots, is_open=True))
    return ws.Workspace(name=name, entity=entity, project=project, sections=sections,
                        settings=ws.WorkspaceSettings(x_axis=STEP_KEY))


def main(argv: Optional[list[str]] = None) -> int:
    from jsonargparse import ArgumentParser

    parser = ArgumentParser(prog="python -m lit_memo.dashboard", description=__doc__)
    parser.add_argument("--entity", type=str, required=True, help="W&B entity (user or team)")
    parser.add_argument("--project", type=str, required=True, help="W&B project, e.g. lit_memo")
    parser.add_argument("--name", type=str, default="lit_memo", help="the workspace's name")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    workspace = build_workspace(args.entity, args.project, args.name)
    try:
        workspace.save()
    except Exception as err:  # noqa: BLE001 - no credentials / no network: say so in one line
        raise SystemExit(f"error: could not save the workspace to {args.entity}/{args.project}: "
                         f"{str(err).splitlines()[0] if str(err) else type(err).__name__} "
                         "(log in with `wandb login`, and check the entity and project exist)") from None
    print(workspace.url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
