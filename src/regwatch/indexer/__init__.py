"""Indexing: plan (pure diff), jobs (scan one account/repository), scheduler.

from regwatch.indexer import scan_account, scan_accounts, ScanRun, ScanProgress
"""

from regwatch.indexer.jobs import scan_account, scan_accounts
from regwatch.indexer.results import RepositoryResult, ScanProgress, ScanRun

__all__ = ["RepositoryResult", "ScanProgress", "ScanRun", "scan_account", "scan_accounts"]
