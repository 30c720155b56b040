"""Indexing: plan (pure diff), jobs (scan one account/repository), scheduler."""
