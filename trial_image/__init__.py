"""The code that runs inside each trial: multi-subnetwork models, data and Katib metrics.

Run ``python -m trial_image.train --help`` (console script ``dcsa-train``). The package talks
to the suggestion service only through Katib: it reads hyperparameters from its command line
and prints ``name=value`` metric lines.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
