"""dcsa: a Katib suggestion service with DC and SA Bayesian optimization."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("dcsa")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
