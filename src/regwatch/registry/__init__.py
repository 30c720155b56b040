"""Registry client: Docker Registry HTTP API V2 / OCI distribution.

`RegistryClient` talks to one registry endpoint; `Transport` is the per-process HTTP machinery
(one aiohttp session, SSL contexts, per-registry budgets) that clients share. Module map:
`challenge` (WWW-Authenticate parser), `links` (Link pagination), `tokens` (bearer token cache),
`auth` (scheme learning, Basic/Bearer), `backoff` (retry arithmetic), `budget` (per-registry
concurrency and RateLimit-* pacing), `transport`, `manifests` (media types, digests, configs),
`failures` (status → error), `stats`, `client`.
"""

from regwatch.registry.client import RegistryClient
from regwatch.registry.stats import ClientStats
from regwatch.registry.transport import Transport

__all__ = ["ClientStats", "RegistryClient", "Transport"]
