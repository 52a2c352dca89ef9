"""Every figure the demo gallery draws, one module a topic; entries compute, these functions only draw and save.

- :mod:`.challenges`: ill-conditioning of f(x) = 30x^2, a saddle, a cliff (``ill_conditioning``, ``saddle``,
  ``cliff``);
- :mod:`.regularize`: chapter 7's regularizers (weight histograms, the alpha curve, on/off curves, early
  stopping, seed bands, the ridge path);
- :mod:`.meta_algorithms`: chapter 8's initialization and meta-algorithms (depth profiles, validation curves,
  continuation, train/val curves);
- :mod:`.schedules`: learning rate and validation error of a few runs (``warmup_and_plateau``);
- :mod:`.bagging`, :mod:`.adversarial`, :mod:`.tangents`: the figures of the entries of those names.

The run-level figures (curves of one run, several runs against steps) are in :mod:`regopt.lab.report`.
"""

import matplotlib

matplotlib.use("Agg")  # files only, never a window: set before any submodule imports pyplot
