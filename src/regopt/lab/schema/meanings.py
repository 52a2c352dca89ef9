"""What a config key means, for the keys whose schema class gives it no attribute docstring.

:mod:`regopt.lab.schema.reference` reads a key's meaning from its attribute docstring first; this table fills the
rest. A plain key (``"noise"``) means the same in every section; ``"Class.key"`` is specific to one class. A test
checks that every entry names a key the schema has.
"""

from __future__ import annotations

MEANINGS: dict[str, str] = {
    # keys of the same name mean the same thing in every section; "Class.key" entries are specific
    "name": "Picks this variant of the section.",
    "test_fraction": "Fraction of the data held out as the test split.",
    "num_samples": "Number of examples generated.",
    "noise": "Standard deviation of the Gaussian noise added to the data.",
    "activation": "Nonlinearity of the hidden layers.",
    "dropout_hidden": "Dropout probability after every hidden activation (sec. 7.12).",
    "dropout_input": "Dropout probability on the input features.",
    "batch_norm": "Batch normalization after each hidden linear or conv layer.",
    "alpha": "Weight alpha of the penalty (0 = off).",
    "std": "Standard deviation of the Gaussian noise.",
    "every": "Check every this many optimizer steps.",
    # sections without a docstring of their own
    "TrainConfig": "How training runs: epochs, minibatches, gradient clipping, checkpoints.",
    "DiagnosticsConfig": "Monitors that make the optimization challenges of sec. 8.2 visible while training.",
    "ConstantSchedule": "A fixed learning rate.",
    "window": "Number of recent steps the monitor judges.",
    "RunConfig.name": "Name of the run: it is written to OUT/NAME/ (letters, digits, '_', '.', '-').",
    "RunConfig.seed": "Seed of the model's initialization, the batch order and every random draw of training.",
    "RunConfig.device": "Where to train: 'auto' takes CUDA, then MPS, if present, else the CPU.",
    "PolynomialData.train_size": "Number of training points.",
    "PolynomialData.val_size": "Number of validation points.",
    "PolynomialData.test_size": "Number of test points.",
    "PolynomialData.degree": "Highest power of x among the features.",
    "PolynomialData.seed": "Seed of the sampled points and their noise.",
    "SpiralsData.num_classes": "Number of spiral arms, one class each.",
    "FileData.path": "The data file; a relative path is taken relative to the config file's folder.",
    "CsvData.label_column": "Name of the target column in the header row.",
    "MlpConfig.widths": "Width of each hidden layer, input side first.",
    "Cnn1dConfig.channels": "Channels of each of the three conv layers.",
    "Cnn2dConfig.channels": "Channels of each conv block, input side first.",
    "GruConfig.hidden_size": "Width of the GRU's hidden state.",
    "GruConfig.num_layers": "Number of stacked GRU layers.",
    "GruConfig.bidirectional": "Read the sequence in both directions.",
    "CustomModelConfig.target": "The model function, 'package.module:function' (its module must be importable).",
    "CustomModelConfig.kwargs": "Keyword arguments passed to the function after input_shape and output_dim.",
    "OptimizerConfig.name": "An optimizer of the table below.",
    "OptimizerConfig.lr": (
        "Learning rate eps (the initial one, when a schedule is set). Unset: the optimizer's own default (the "
        "table below), which the run directory's config.toml records."
    ),
    "StepSchedule.step_size": "Intervals between two decays.",
    "StepSchedule.gamma": "Factor of each decay.",
    "ExponentialSchedule.gamma": "Factor of each interval's decay.",
    "CosineSchedule.eta_min": "Learning rate at the end of the run.",
    "LinearSchedule.tau": "Interval at which the decay ends (unset: the whole run).",
    "LinearSchedule.final_fraction": "eps_tau / eps_0, the fraction of the initial lr kept after tau.",
    "TrainConfig.epochs": "Number of passes over the training split.",
    "TrainConfig.batch_size": "Examples per minibatch.",
    "AveragingConfig.decay": "Unset: arithmetic mean of the iterates; in [0, 1): exponential moving average.",
    "AveragingConfig.start_step": "Optimizer step from which the iterates are averaged.",
    "InitConfig.policy": "Weight initialization of every layer (torch's own when 'default').",
    "ElasticNetConfig.l1_ratio": "Share of the L1 term in the penalty (1 = L1 only, 0 = L2 only).",
    "ImageAugmentConfig.rotate": "Largest random rotation, in degrees.",
    "ImageAugmentConfig.flip": "Random horizontal flips.",
    "ImageAugmentConfig.scale": "Range [low, high] of the random scaling.",
    "ImageAugmentConfig.shift": "Largest random shift, as a fraction of the image size.",
    "SignalAugmentConfig.shift": "Largest random shift, in positions.",
    "SignalAugmentConfig.scale": "Range [low, high] of the random amplitude scaling.",
    "SignalAugmentConfig.noise": "Standard deviation of the additive Gaussian noise.",
    "EarlyStoppingConfig.monitor": "The metric whose improvement is watched.",
    "EarlyStoppingConfig.patience": "Epochs without improvement before training stops.",
    "EarlyStoppingConfig.min_delta": "Smallest decrease that counts as an improvement.",
    "EarlyStoppingConfig.restore_best": "Return to the weights of the best epoch when training stops.",
    "EarlyStoppingConfig.then": "Use of the validation data afterwards: 'retrain' (Alg. 7.2), 'continue' (Alg. 7.3).",
    "GradientNormsConfig.spike_factor": "A spike is a norm above this many times the running median.",
    "IllConditioningConfig.patience": "Positive checks in a row before the alarm.",
    "PlateauConfig.loss_tol": "Relative change of the loss over the window below which the loss has not moved.",
    "PlateauConfig.grad_tol": "Gradient norm below which the gradient is small.",
}
