"""The gallery's entries by chapter of the seed, the claim each shows, and the command that reruns it.

Plain data, importing no entry: :mod:`regopt.lab.gallery.registry` (the entries' order and functions) and the
demo's index page (:mod:`regopt.lab.gallery.index_page`) both read it. A test checks that every entry of the
registry has exactly one chapter and a claim, and that the README's gallery table groups them the same way.
"""

from __future__ import annotations

CHAPTERS: dict[str, tuple[str, ...]] = {
    "7, regularization": (
        "overfit",
        "l1_vs_l2",
        "alpha_curve",
        "dropout",
        "augmentation",
        "early_stopping",
        "multitask",
        "underconstrained",
        "bagging",
        "adversarial",
        "tangent_prop",
    ),
    "8, optimization": (
        "optimizers",
        "warmup_and_plateau",
        "ill_conditioning",
        "saddle",
        "cliff",
        "second_order",
        "initialization",
        "batch_norm",
        "pretraining",
        "curriculum",
    ),
}
"""The entries by chapter of the seed, as the README's gallery table and ``runs/demo/index.html`` group them."""

CLAIMS: dict[str, str] = {
    "overfit": "Without regularization an MLP memorizes its 200 training digits: training error reaches 0 while "
    "validation error stays far above it (a generalization gap).",
    "l1_vs_l2": "L2 pulls weights towards zero but not exactly to zero; L1 drives many weights to exactly zero "
    "(a sparse model).",
    "alpha_curve": "The regularization strength alpha has to be selected: small alpha over-fits (training error 0, "
    "a wide gap), large alpha under-fits (both errors high); validation error is lowest in between.",
    "dropout": "Dropout (p = 0.5) deactivates random units while training, so the network fits its training set "
    "less exactly and over-fits less; weight scaling predicts about as well as averaging Monte Carlo masks.",
    "augmentation": "Augmenting the data (random shifts of the training signals) acts like a larger training set: "
    "the gap between training and validation error narrows.",
    "early_stopping": "Early stopping ends training once validation error has not improved for `patience` epochs "
    "and restores the best epoch's weights, avoiding the epochs where the model only over-fits.",
    "multitask": "Sharing a trunk among related tasks (digit, parity, > 4) pools their examples to train the "
    "generic parameters; with few training images it is compared with the digit-only model on digit error.",
    "underconstrained": "With more features than examples X'X is singular; weight decay makes (X'X + alpha I) "
    "invertible for every alpha > 0, and as alpha -> 0 its solution tends to the pseudo-inverse solution.",
    "bagging": "Bagging trains members on resampled data sets, so each misreads different digits among 9, 6 and 8; "
    "their average reads them right and ensemble accuracy rises with the number of members.",
    "adversarial": "A clean-trained model is fooled by small adversarial perturbations; training on FGSM or PGD "
    "examples (eps 0.1) keeps much more test accuracy under attack.",
    "tangent_prop": "Tangent prop penalizes the output's change along shift and rotation tangent vectors, making the "
    "classifier locally invariant; tangent distance beats Euclidean distance for 1-nearest-neighbour.",
    "optimizers": "SGD, momentum, Nesterov, AdaGrad, RMSProp (with Nesterov), Adam and delta-bar-delta (Algorithms "
    "8.1-8.7) on one model, data set and 640-step budget, each at its best lr from a validation sweep.",
    "warmup_and_plateau": "RMSProp with rho 0.9999 takes huge first steps at lr 0.01: the constant lr stays stuck at "
    "chance (0.9 error), a warmup trains normally, and reducing the lr on a plateau comes too late.",
    "ill_conditioning": "Gradient descent on f(x) = 30x^2: lr 0.033 converges, 0.034 and 0.035 diverge; the boundary "
    "is 2/f'' = 1/30, where the criterion (1/2) eps^2 g'Hg - eps g'g turns positive.",
    "saddle": "At the saddle of x^2 - y^2 the gradient vanishes, so escape starts slowly: gradient descent, "
    "momentum and Adam leave it at their own rates from (1, 0.001), and none leaves from the ridge y = 0.",
    "cliff": "On a cliff the gradient is huge: unclipped steps jump far away, while clipping the gradient norm to 1 "
    "walks down the cliff.",
    "second_order": "On quadratics with condition number kappa = 10 to 1e4, gradient descent's iterations to 1e-8 "
    "grow ~ kappa, heavy ball's and CG's ~ sqrt(kappa), BFGS's and L-BFGS's within 3x of CG's, Newton takes 1; "
    "full-batch L-BFGS trains a digits MLP to a far lower loss than Adam in as many evaluations; on 200 digits SAM "
    "ends in flatter minima than its SGD base (top Hessian eigenvalue about half) without a lower test error.",
    "initialization": "The initialization scale decides whether activations and gradients survive 20 layers: with "
    "He (ReLU) or Glorot (tanh) scaling their std stays level, too small a scale makes them vanish.",
    "batch_norm": "A 12-hidden-layer MLP trained at one lr and budget learns much faster with batch normalization "
    "than without it.",
    "pretraining": "Greedy supervised pretraining grows a deep MLP one layer at a time, then fine-tunes it; "
    "compared here with the same network trained from scratch for as many epochs.",
    "curriculum": "Curriculum learning presents easy examples first (compared with random and hard-first order); "
    "continuation smooths a wiggly 1-D loss so that descent reaches the global minimum instead of a local one.",
}
"""Each entry's claim from the seed, in one or two sentences, for ``runs/demo/index.html``."""


def chapter_of(name: str) -> str:
    """The chapter (a key of :data:`CHAPTERS`) that groups entry ``name``."""
    return next(chapter for chapter, names in CHAPTERS.items() if name in names)


def rerun_command(name: str) -> str:
    """The command that reruns entry ``name`` alone."""
    return f"regopt demo --only {name}"
