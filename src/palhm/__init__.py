"""palhm: Periodic Automatic Live Host Maintenance."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__: str = version("palhm")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"
