"""Trap 14.2.12: with no working C++ compiler, a compiled update falls back to the eager path with one warning.

No mock: a fresh Python process is given a C++ compiler that does not exist (``CXX``, which inductor reads for
``torch._inductor.config.cpp.cxx``) and an empty inductor cache (so no kernel compiled earlier can be reused), and
steps a small model with ``compile=True``; then with ``compile=False``. The same process compares the weights.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import json, warnings
    import torch
    from regopt.optim import DeltaBarDelta
    from regopt.optim.kernels import compile_failure

    def run(compile):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
        optimizer = DeltaBarDelta(model.parameters(), lr=1e-2, kappa=1e-3, compile=compile)
        gen = torch.Generator().manual_seed(0)
        for _ in range(3):
            optimizer.zero_grad()
            model(torch.randn(16, 4, generator=gen)).pow(2).mean().backward()
            optimizer.step()
        return [p.detach().clone() for p in model.parameters()]

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        compiled = run(True)
        again = run(True)  # a second optimizer in the same process: no second warning, no second compile
    eager = run(False)
    print(json.dumps({
        "warnings": [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)],
        "failure": compile_failure(),
        "same": all(torch.equal(a, b) for a, b in zip(compiled, eager)),
        "same_again": all(torch.equal(a, b) for a, b in zip(again, eager)),
    }))
    """
)


def test_no_cxx_compiler_falls_back_to_eager_with_one_warning(tmp_path):
    env = {
        **os.environ,
        "CXX": str(tmp_path / "no-such-compiler" / "c++"),
        "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "inductor"),
        "OMP_NUM_THREADS": "1",
    }
    env.pop("REGOPT_COMPILE", None)
    done = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    (message,) = result["warnings"]
    assert "InvalidCxxCompiler" in message and "InvalidCxxCompiler" in result["failure"]
    assert "compile=False" in message and "REGOPT_COMPILE=0" in message
    assert result["same"] and result["same_again"]
