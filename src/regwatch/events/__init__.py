"""Events: new-tag events out (Echo/Igor or CloudEvents webhooks, triggers, a durable outbox with
retries and rate caps) and registry push notifications in.

Module map: `payloads` (what a sink receives, signatures), `matching` (triggers and filters:
which sinks want an event), `retry` (backoff, dead-lettering), `ratecap` (per-account caps),
`sender` (one HTTP attempt), `outbox` (the worker), `notifications` (parsing pushes in),
`inbound` (verifying and applying them), `views`, `metrics`, `routes` (HTTP), `service`
(`install(service)`).
"""
