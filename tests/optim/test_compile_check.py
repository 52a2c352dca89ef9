"""A compiled update is trusted only after its first call agrees with the eager update (regopt.optim.kernels).

No mock: torch 2.13's on-disk inductor cache does not key its kernels by ``ATEN_CPU_CAPABILITY``, so on a CPU
with AVX-512 a kernel built by a process at the native capability is served to a process run with
``ATEN_CPU_CAPABILITY=avx2``, where it computes something else (Adam's update off by 0.1 here). Two fresh
processes share one fresh cache: the first compiles at the native capability, the second runs at ``avx2``. Each
compares ``compile=True`` with ``compile=False`` on the same start. Whether or not this machine poisons the cache
(an AVX2-only CPU builds the same kernel twice), the weights must equal the eager update's up to rounding; where
the kernel was wrong, one warning must say so.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = textwrap.dedent(
    """
    import json, warnings
    import torch
    from regopt.optim import Adam

    torch.manual_seed(0)
    p = torch.nn.Parameter(torch.randn(4096))
    p.grad = torch.randn(4096)
    q = torch.nn.Parameter(p.detach().clone())
    q.grad = p.grad.clone()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        Adam([p], lr=0.1, compile=True).step()
    Adam([q], lr=0.1, compile=False).step()
    print(json.dumps({
        "difference": (p - q).abs().max().item(),
        "warnings": [str(w.message) for w in caught if str(w.message).startswith("regopt")],
    }))
    """
)


def _step(cache: Path, capability: str | None) -> dict:
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(cache), "OMP_NUM_THREADS": "1"}
    env.pop("REGOPT_COMPILE", None)
    env.pop("ATEN_CPU_CAPABILITY", None)
    if capability:
        env["ATEN_CPU_CAPABILITY"] = capability
    done = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_kernel_served_from_another_capabilitys_cache_never_changes_the_update(tmp_path: Path) -> None:
    native = _step(tmp_path / "inductor", None)
    avx2 = _step(tmp_path / "inductor", "avx2")
    # One Adam step of lr 0.1 on values of order 1: compiled and eager differ by a few float32 ulps of 1 at most
    # (fusion reorders the arithmetic); a wrong kernel is off by ~0.1.
    for result in (native, avx2):
        assert result["difference"] <= 1e-5, result
        for message in result["warnings"]:
            assert "the compiled update differs from the eager one" in message, message
    assert len(avx2["warnings"]) <= 1
