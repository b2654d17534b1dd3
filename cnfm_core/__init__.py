"""cnfm_core: continuous normalizing flows on the sphere S^2, trained with the Probability Path
Divergence (PPD, Ben-Hamu et al., ICML 2022) or Riemannian flow matching (RFM) as a baseline.

Modules, one concept each: :mod:`~cnfm_core.manifolds` (the manifold interface and its
implementations, by name), :mod:`~cnfm_core.sphere` (lat/lon and S² shorthands), :mod:`~cnfm_core.data`
(CSV reading, splits), :mod:`~cnfm_core.paths` (the target-path interface and the vMF mixture path),
:mod:`~cnfm_core.schedules` (concentration schedules), :mod:`~cnfm_core.targets` (each manifold's target
path, by name), :mod:`~cnfm_core.field` (the vector field), :mod:`~cnfm_core.objectives` (PPD, RFM),
:mod:`~cnfm_core.integrate` (sampling, likelihood, density grids), :mod:`~cnfm_core.kde`
(the kernel density baseline), :mod:`~cnfm_core.runs` (the run directory) and
:mod:`~cnfm_core.train` (the training loop). ``python -m cnfm_core`` is the CLI.
"""

__version__ = "0.1.0"
