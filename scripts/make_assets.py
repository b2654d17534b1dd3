"""Write the bundled data derived inside the project (see assets/README.md).

    python scripts/make_assets.py

Writes ``assets/synthetic_mixture.csv`` (2,000 exact samples, seed 0, of
``cnfm_core.synthetic.DEFAULT_MIXTURE``, as ``lat,lon`` rounded to 5 decimals, about 1 m).
"""

from __future__ import annotations

from pathlib import Path

from cnfm_core.data import write_points
from cnfm_core.synthetic import DEFAULT_MIXTURE

ASSETS = Path(__file__).resolve().parents[1] / "assets"


def write_synthetic(n: int = 2000, seed: int = 0) -> Path:
    out = ASSETS / "synthetic_mixture.csv"
    write_points(out, DEFAULT_MIXTURE.sample(n, seed=seed), decimals=5)
    return out


if __name__ == "__main__":
    print(write_synthetic())
