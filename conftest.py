"""Settings for every test in the workspace."""

import os

# every Trainer built by vislab.lightning.build_trainer checks, after fit, that all tensors follow the module
# to its device and that a training step on the meta device mixes no devices (vislab.devices)
os.environ.setdefault("VISLAB_CHECK_DEVICES", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
