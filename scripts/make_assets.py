"""Write the bundled data derived inside the project (see assets/README.md).

    python scripts/make_assets.py

Writes ``assets/synthetic_mixture.csv`` (2,000 exact samples, seed 0, of
``cnfm_core.synthetic.DEFAULT_MIXTURE``, as ``lat,lon`` rounded to 5 decimals, about 1 m).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cnfm_core.sphere import xyz_to_latlon
from cnfm_core.synthetic import DEFAULT_MIXTURE

ASSETS = Path(__file__).resolve().parents[1] / "assets"


def write_synthetic(n: int = 2000, seed: int = 0) -> Path:
    lat, lon = xyz_to_latlon(DEFAULT_MIXTURE.sample(n, seed=seed))
    out = ASSETS / "synthetic_mixture.csv"
    rows = np.stack([lat.numpy(), lon.numpy()], axis=1)
    np.savetxt(out, rows, fmt="%.5f", delimiter=",", header="lat,lon", comments="")
    return out


if __name__ == "__main__":
    print(write_synthetic())
