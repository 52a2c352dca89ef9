"""The run config schema, one file per group of sections; ``regopt.lab.config`` re-exports it."""
