"""``python -m regopt``: the command line, also as ``torchrun --nproc_per_node=N -m regopt run CONFIG``."""

from regopt.cli import main

raise SystemExit(main())
