"""Gallery entry ``adversarial``: a clean-trained and two adversarially trained models under FGSM and PGD attacks.

The same MLP (64 -> :data:`WIDTH` -> 10, ReLU) is trained on the 8x8 digits three times from the same
initialization, with the same batch order and number of steps, in regopt's Trainer: on clean batches only, and
with :class:`~regopt.adversarial.AdversarialBatches` replacing half of every batch by FGSM or by PGD examples
at ``eps =`` :data:`TRAIN_EPS` (pixels lie in [0, 1], so 0.1 is a tenth of the ink range per pixel). Each model
is then attacked on the test split by FGSM and by a 20-step L-infinity PGD at every eps of :data:`EPS_GRID`
(white box: the attacker knows the model and the labels), and the accuracy on the attacked test digits is
plotted against eps. A second figure shows a few test digits, the PGD perturbation found against each model,
and what each model then predicts.

What to look for (Goodfellow et al. 2016, sec. 7.13): the clean model, near 97% accurate, falls below 50%
at eps = 0.1, a perturbation a person barely notices; adversarial training keeps it far higher at and below the
training eps, at no cost in clean accuracy here, and the gain fades for eps well above the one trained for.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from regopt.lab.gallery.base import GalleryResult, single_threaded, write_table

ENTRY = "adversarial"
WIDTH = 128
EPOCHS = 30
BATCH_SIZE = 64
LR = 3e-3
SEED = 0
TRAIN_EPS = 0.1
RATIO = 0.5
PGD_TRAIN_STEPS = 5
PGD_EVAL_STEPS = 20
EPS_GRID = (0.0, 0.025, 0.05, 0.075, 0.1, 0.125, 0.15, 0.2, 0.25, 0.3)
TABLE_EPS = (0.05, 0.1, 0.2)
SHOW_EPS = 0.1
CLAMP = (0.0, 1.0)
MODELS = ("clean", "FGSM-trained", "PGD-trained")


def make_model(seed: int = SEED) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, WIDTH), nn.ReLU(), nn.Linear(WIDTH, 10))


def attack_for(kind: str, eps: float, steps: int, seed: int = SEED):
    """FGSM or L-infinity PGD at ``eps``, clamped to the pixel range; PGD's random start seeded."""
    from regopt.adversarial import FGSM, PGD

    if kind == "FGSM":
        return FGSM(eps, clamp=CLAMP)
    return PGD(eps, steps=steps, clamp=CLAMP, generator=torch.Generator().manual_seed(seed))


def train(data, kind: str, epochs: int) -> tuple[nn.Module, float]:
    """One of :data:`MODELS` trained in the lab's Trainer; returns it (in eval mode) and the training seconds."""
    from regopt.adversarial import AdversarialBatches
    from regopt.lab.trainer import Trainer

    model = make_model()
    transforms = []
    if kind != "clean":
        attack = attack_for(kind.split("-")[0], TRAIN_EPS, PGD_TRAIN_STEPS)
        transforms = [AdversarialBatches(model, F.cross_entropy, attack, ratio=RATIO)]
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    trainer = Trainer(
        model, optimizer, data, epochs=epochs, batch_size=BATCH_SIZE, batch_transforms=transforms, seed=SEED
    )
    started = time.perf_counter()
    trainer.fit()
    return model.eval(), time.perf_counter() - started


def robustness_curves(models: dict[str, nn.Module], x: Tensor, y: Tensor) -> dict[str, dict[str, list[float]]]:
    """``curves[attack][model]``: test accuracy under the attack at each eps of :data:`EPS_GRID`."""
    from regopt.adversarial import robust_accuracy

    curves: dict[str, dict[str, list[float]]] = {"FGSM": {}, "PGD": {}}
    for kind, per_model in curves.items():
        for name, model in models.items():
            per_model[name] = [
                robust_accuracy(model, x, y, attack_for(kind, eps, PGD_EVAL_STEPS) if eps > 0 else None)
                for eps in EPS_GRID
            ]
    return curves


def attacked_examples(
    models: dict[str, nn.Module], x: Tensor, y: Tensor, *, count: int = 6
) -> tuple[Tensor, Tensor, dict[str, Tensor], dict[str, tuple[Tensor, Tensor]]]:
    """The first ``count`` test digits, the clean and the PGD-trained model's predictions on them, and per model
    the digits attacked by PGD at :data:`SHOW_EPS` with its predictions on those (for the examples figure)."""
    x, y = x[:count], y[:count]
    shown = {name: models[name] for name in ("clean", "PGD-trained")}
    with torch.no_grad():
        clean_predictions = {name: model(x).argmax(1) for name, model in shown.items()}
    attacked = {}
    for name, model in shown.items():
        x_adv = attack_for("PGD", SHOW_EPS, PGD_EVAL_STEPS)(model, F.cross_entropy, x, y)
        with torch.no_grad():
            attacked[name] = (x_adv, model(x_adv).argmax(1))
    return x, y, clean_predictions, attacked


HEADERS = (
    "model",
    "clean accuracy",
    *(f"FGSM eps={eps}" for eps in TABLE_EPS),
    *(f"PGD eps={eps}" for eps in TABLE_EPS),
    "train s",
)


@single_threaded
def adversarial(out: Path, progress: bool, *, epochs: int = EPOCHS) -> GalleryResult:
    """Digits MLP: clean vs FGSM- vs PGD-adversarially trained (eps 0.1); test accuracy under FGSM and PGD at several eps."""  # noqa: E501
    from regopt.lab.config import DigitsData
    from regopt.lab.data import load_dataset
    from regopt.lab.gallery.figures.adversarial import plot_examples, plot_robustness

    del progress  # about 20 s in all: no progress bar
    data = load_dataset(DigitsData(name="digits", image=True))
    models, seconds = {}, {}
    for name in MODELS:
        models[name], seconds[name] = train(data, name, epochs)
    curves = robustness_curves(models, data.x_test, data.y_test)

    folder = Path(out) / ENTRY
    robustness, examples = folder / "robust_accuracy.png", folder / "examples.png"
    plot_robustness(
        curves,
        robustness,
        eps_grid=EPS_GRID,
        train_eps=TRAIN_EPS,
        pgd_steps=PGD_EVAL_STEPS,
        title=f"digits MLP [{WIDTH}], {epochs} epochs: clean vs adversarial training (half of each batch attacked)",
    )
    plot_examples(*attacked_examples(models, data.x_test, data.y_test), examples, eps=SHOW_EPS)
    index = {eps: EPS_GRID.index(eps) for eps in TABLE_EPS}
    rows = [
        (
            name,
            curves["FGSM"][name][0],
            *(curves["FGSM"][name][index[eps]] for eps in TABLE_EPS),
            *(curves["PGD"][name][index[eps]] for eps in TABLE_EPS),
            seconds[name],
        )
        for name in MODELS
    ]
    digits = dict.fromkeys(HEADERS[1:-1], 3) | {"train s": 1}
    note = (
        f"\nTest accuracy on {len(data.x_test)} digits under white-box L-infinity attacks (PGD: {PGD_EVAL_STEPS} "
        f"steps, random start). Adversarial models: half of every batch replaced by FGSM or {PGD_TRAIN_STEPS}-step "
        f"PGD examples at eps = {TRAIN_EPS}; all three share initialization, batches and {epochs} epochs.\n"
    )
    table = write_table(
        folder / "table.md", HEADERS, rows, title="accuracy under attack, digits MLP", digits=digits, append=note
    )
    at = EPS_GRID.index(TRAIN_EPS)
    return GalleryResult(
        entry=ENTRY,
        files=[robustness, examples, table],
        numbers={
            "clean model: clean accuracy": curves["FGSM"]["clean"][0],
            f"clean model: PGD accuracy at eps={TRAIN_EPS}": curves["PGD"]["clean"][at],
            f"PGD-trained: PGD accuracy at eps={TRAIN_EPS}": curves["PGD"]["PGD-trained"][at],
            f"FGSM-trained: PGD accuracy at eps={TRAIN_EPS}": curves["PGD"]["FGSM-trained"][at],
            "PGD-trained: clean accuracy": curves["FGSM"]["PGD-trained"][0],
        },
    )
