"""vislab: the shared base of the vislab research packages.

Modules: ``runtime`` (device, precision, seeding), ``run`` (the run contract every
package's ``train`` follows), ``config`` (YAML presets and dotted overrides),
``lightning`` (Trainer defaults), ``io`` (safe reads and atomic writes), ``clip``,
``diffusion``, ``toy`` (the toy image-text world), ``faces`` (toy anti-spoofing
faces and real-dataset readers), ``metrics``, ``testing``.
"""

import os as _os

# Spin-waiting OpenMP threads are many times slower on a busy 2-core machine; this must
# be set before torch loads its OpenMP runtime, and vislab is imported before torch.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
