"""Regularization techniques of chapter 7: penalties added to the loss and actions after the optimizer step.

Every object works in a plain PyTorch loop::

    loss = task_loss + penalty(model)     # L2, L1, ElasticNet, Tying, ActivationL1, ActivationKL
    loss.backward(); optimizer.step()
    action(model)                         # MaxNorm; L1(proximal=True).shrink(model, lr)

Batch transforms ``(x, y) -> (x, y)`` (InputNoise, ImageAugment, SignalAugment) act on training batches; noise
layers and weight noise wrap a model; EarlyStopping is a :class:`regopt.Monitor`.
"""

from regopt.regularize.augment import ImageAugment, SignalAugment
from regopt.regularize.constraints import MaxNorm
from regopt.regularize.dropout import compare_inference, mc_dropout_predict, weight_scaling_predict
from regopt.regularize.early_stopping import EarlyStopping, algorithm_7_2, algorithm_7_3
from regopt.regularize.manifold_tangent import ContractiveAutoencoder, fit_contractive_autoencoder, learned_tangents
from regopt.regularize.multitask import (
    DIGIT_TASK_CLASSES,
    MultiTaskLoss,
    MultiTaskModel,
    digit_tasks,
    stack_targets,
    unstack_targets,
)
from regopt.regularize.noise import GaussianNoise, InputNoise, add_hidden_noise
from regopt.regularize.penalties import L1, L2, ElasticNet, Penalty, Tying
from regopt.regularize.selection import Selector, select_parameters
from regopt.regularize.sparsity import ActivationKL, ActivationL1, ActivationPenalty, activation_sparsity
from regopt.regularize.tangent import TangentProp, signal_shift_tangent, tangent_vectors
from regopt.regularize.tangent_distances import tangent_distance, tangent_distance_classify, tangent_distance_matrix
from regopt.regularize.target_noise import smoothed_cross_entropy, soft_targets
from regopt.regularize.underconstrained import (
    RidgePoint,
    gram_condition_number,
    pseudo_inverse_solution,
    regularized_gram,
    ridge_path,
    ridge_solution,
)
from regopt.regularize.weight_noise import WeightNoise, add_weight_noise, remove_weight_noise

__all__ = [
    "DIGIT_TASK_CLASSES",
    "L1",
    "L2",
    "ActivationKL",
    "ActivationL1",
    "ActivationPenalty",
    "ContractiveAutoencoder",
    "EarlyStopping",
    "ElasticNet",
    "GaussianNoise",
    "ImageAugment",
    "InputNoise",
    "MaxNorm",
    "MultiTaskLoss",
    "MultiTaskModel",
    "Penalty",
    "RidgePoint",
    "Selector",
    "SignalAugment",
    "TangentProp",
    "Tying",
    "WeightNoise",
    "activation_sparsity",
    "add_hidden_noise",
    "add_weight_noise",
    "algorithm_7_2",
    "algorithm_7_3",
    "compare_inference",
    "digit_tasks",
    "fit_contractive_autoencoder",
    "gram_condition_number",
    "learned_tangents",
    "mc_dropout_predict",
    "pseudo_inverse_solution",
    "regularized_gram",
    "remove_weight_noise",
    "ridge_path",
    "ridge_solution",
    "select_parameters",
    "signal_shift_tangent",
    "smoothed_cross_entropy",
    "soft_targets",
    "stack_targets",
    "tangent_distance",
    "tangent_distance_classify",
    "tangent_distance_matrix",
    "tangent_vectors",
    "unstack_targets",
    "weight_scaling_predict",
]
