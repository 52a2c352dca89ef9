"""retain_freed_memory: freed blocks are reused without page faults; the CLI applies it unless told not to."""

import platform
import subprocess
import sys

import pytest

from regopt import cli
from regopt.lab import memory

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"

# 48 one-MiB tensors written, freed together, again and again: the minor page faults per page touched after the
# first round. A freed block that went back to the OS faults in again; a retained one does not.
CHURN = """
import resource, sys, torch
if sys.argv[1] == "retain":
    from regopt.lab.memory import retain_freed_memory
    assert retain_freed_memory()
def churn():
    held = [torch.ones(1 << 18) for _ in range(48)]
    del held
churn()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    churn()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / (5 * 48 * 256))
"""


def faults_per_page(mode: str) -> float:
    out = subprocess.run([sys.executable, "-c", CHURN, mode], capture_output=True, text=True, check=True)
    return float(out.stdout)


@pytest.mark.skipif(not GLIBC, reason="mallopt thresholds are glibc's")
def test_retained_memory_is_reused_without_page_faults():
    default, retained = faults_per_page("default"), faults_per_page("retain")
    assert retained < 0.05, retained  # measured 0.004: the same pages serve every round
    assert default > 5 * retained, (default, retained)  # measured 0.40 with glibc 2.36's defaults


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"trim_threshold": -1}, "trim_threshold must be in"),
        ({"trim_threshold": 1 << 31}, "got 2147483648"),
        ({"mmap_threshold": 64 << 20}, "mmap_threshold in \\[0, 33554432\\]"),
    ],
)
def test_bad_thresholds_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        memory.retain_freed_memory(**kwargs)


def test_not_glibc_does_nothing(monkeypatch):
    monkeypatch.setattr(memory.platform, "libc_ver", lambda: ("", ""))
    assert memory.retain_freed_memory() is False


@pytest.mark.parametrize(("value", "applied"), [(None, True), ("1", True), ("0", False), ("off", False)])
def test_environment_variable_turns_it_off(monkeypatch, value, applied):
    calls = []
    monkeypatch.setattr(memory, "retain_freed_memory", lambda: calls.append(1) or True)
    if value is None:
        monkeypatch.delenv(memory.DISABLE_VARIABLE, raising=False)
    else:
        monkeypatch.setenv(memory.DISABLE_VARIABLE, value)
    assert memory.retain_freed_memory_unless_disabled() is applied
    assert len(calls) == int(applied)


def test_cli_retains_freed_memory_at_start(monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(memory, "retain_freed_memory_unless_disabled", lambda: calls.append(1) or True)
    assert cli.main(["list"]) == 0
    assert calls == [1]
