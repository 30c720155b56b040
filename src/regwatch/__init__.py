"""regwatch: an image source for deployment pipelines.

Indexes Docker Registry HTTP API V2 / OCI registries, answers Clouddriver-compatible lookups and
delivers new-tag events, configured with `hal config provider docker-registry`-compatible commands.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("regwatch")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"

USER_AGENT = f"regwatch/{__version__}"
