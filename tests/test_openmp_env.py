"""The OpenMP settings every training process gets (cnfm_core.config.OPENMP_ENV): threads that sleep while
they wait, which keeps a 2-thread step from collapsing on a busy shared machine (bench/bench_step.py --compare).

Two contracts: the job launcher passes the settings on (unless the caller's environment says otherwise),
and they change no number: a PPD loss and its gradients on a fixed batch, at 2 threads, are the same with and
without them, and both agree with an independent computation (the target by log-sum-exp with autograd
derivatives, the divergence by three backward passes) instead of the fused one used in training.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cnfm_core.config import OPENMP_ENV
from cnfm_core.procs import alive, launch

TESTS = Path(__file__).resolve().parent
#: Starting Python and torch on a loaded 2-core machine can take tens of seconds; only a hang should fail.
PROCESS_TIMEOUT_S = 300.0


def _wait(pid: int, start: int | None) -> None:
    deadline = time.monotonic() + PROCESS_TIMEOUT_S
    while alive(pid, start):
        assert time.monotonic() < deadline, f"process {pid} did not end within {PROCESS_TIMEOUT_S:.0f} s"
        time.sleep(0.1)


@pytest.mark.parametrize("given, expected", [(None, OPENMP_ENV["OMP_WAIT_POLICY"]), ("ACTIVE", "ACTIVE")])
def test_launch_passes_the_openmp_settings_unless_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        given: str | None, expected: str) -> None:
    assert OPENMP_ENV == {"OMP_WAIT_POLICY": "PASSIVE"}
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    (tmp_path / "show_env.py").write_text("import os\nprint('policy=' + os.environ.get('OMP_WAIT_POLICY', '-'))\n")
    env = {"PYTHONPATH": str(tmp_path), **({"OMP_WAIT_POLICY": given} if given else {})}
    log = tmp_path / "out.log"
    proc = launch("show_env", [], log=log, env=env)
    _wait(proc.pid, proc.start)
    assert log.read_text().strip() == f"policy={expected}"


def _child() -> None:
    """Print, as JSON, the PPD loss (l=1) and gradients on a fixed float64 batch: fused (as trained) and by an
    independent computation. Run in a fresh process so that OpenMP reads the environment it was given."""
    import torch

    from cnfm_core.field import VectorField
    from cnfm_core.objectives import PPD
    from cnfm_core.paths import ExponentialSchedule, VMFMixturePath, vmf_log_prob

    torch.set_num_threads(2)
    g = torch.Generator().manual_seed(0)
    data = torch.randn(300, 3, generator=g, dtype=torch.float64)
    data = data / data.norm(dim=1, keepdim=True)
    path = VMFMixturePath(data, ExponentialSchedule(50.0), floor=0.02)
    torch.manual_seed(1)
    field = VectorField(hidden=64, layers=3, space_frequencies=4, space_scale=3.0).double()
    torch.nn.init.normal_(field.output.weight, std=0.3)
    t = torch.rand(256, generator=g, dtype=torch.float64)
    x = path.sample(t, generator=g)

    def grads(loss: torch.Tensor) -> list[float]:
        field.zero_grad(set_to_none=True)
        loss.backward()
        return [float(p.grad.double().norm()) for p in field.parameters()] + [float(loss)]

    fused = grads(PPD(path, ell=1).residual(field, x, t).abs().mean())
    # independent: log p_t by log-sum-exp over every point, its derivatives by autograd
    xr, tr = x.clone().requires_grad_(True), t.clone().requires_grad_(True)
    k = path.schedule.kappa(tr)
    kernel = torch.logsumexp(vmf_log_prob(xr[:, None, :], data[None], k[:, None]), dim=1) - math.log(len(data))
    log_p = torch.logaddexp(kernel + math.log1p(-0.02), torch.full_like(kernel, math.log(0.02 / (4 * math.pi))))
    gx, gt = torch.autograd.grad(log_p.sum(), (xr, tr))
    grad_log_p = gx - (gx * x).sum(-1, keepdim=True) * x
    xd = x.clone().requires_grad_(True)
    v = field(xd, t)
    div = sum(torch.autograd.grad(v[:, i].sum(), xd, create_graph=True)[0][:, i] for i in range(3))
    independent = grads((gt + (grad_log_p * v).sum(-1) + div).abs().mean())
    print(json.dumps({"fused": fused, "independent": independent}))


def _run_child(policy: str | None) -> dict[str, list[float]]:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    env.update(OMP_NUM_THREADS="2", **({"OMP_WAIT_POLICY": policy} if policy else {}))
    code = f"import sys; sys.path.insert(0, {str(TESTS)!r}); import test_openmp_env; test_openmp_env._child()"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=PROCESS_TIMEOUT_S, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_settings_change_no_number() -> None:
    before, after = _run_child(None), _run_child(OPENMP_ENV["OMP_WAIT_POLICY"])
    assert after["fused"] == before["fused"]  # bit for bit: only how idle threads wait differs
    loss = after["fused"][-1]
    assert loss > 0.1  # a non-trivial residual
    for run in (before, after):
        for a, b in zip(run["fused"], run["independent"], strict=True):
            assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12), (a, b)
