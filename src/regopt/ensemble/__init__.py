"""Ensembles (sec. 7.11): bagging with K models trained at once (stacked weights), voting, model averaging.

Example::

    import torch
    from torch import nn
    from regopt.ensemble import Bagging
    from regopt.optim import Adam

    bag = Bagging(lambda: nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)), k=8)
    bag.fit(x_train, y_train, epochs=30, batch_size=32, optimizer_factory=lambda p: Adam(p, lr=1e-3))
    bag.predict(x_test)                    # majority vote of the 8 members
    bag.predict_proba(x_test)              # their mean probabilities
    bag.oob_error(x_train, y_train)        # an estimate of the test error from the training set alone
"""

from regopt.ensemble.bagging import Bagging
from regopt.ensemble.bootstrap import bootstrap_batches, bootstrap_indices, out_of_bag_mask
from regopt.ensemble.voting import average_models, majority_vote, vote_counts

__all__ = [
    "Bagging",
    "average_models",
    "bootstrap_batches",
    "bootstrap_indices",
    "majority_vote",
    "out_of_bag_mask",
    "vote_counts",
]
