"""Several instances: `scan_jobs` (one row per repository of an account scanned in a shared pass,
claimed by any instance with a lease) and `scan_requests` ("scan now" asked on any instance).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

ACCOUNT, REPOSITORY = 128, 255


def _sorted(length: int) -> sa.types.TypeEngine[str]:
    return sa.String(length).with_variant(sa.String(length, collation="C"), "postgresql")


def _count(name: str) -> sa.Column[int]:
    return sa.Column(name, sa.Integer(), nullable=False)


def upgrade() -> None:
    op.create_table(
        "scan_jobs",
        sa.Column("account", sa.String(ACCOUNT), nullable=False),
        sa.Column("repository", _sorted(REPOSITORY), nullable=False),
        sa.Column("run_id", sa.BigInteger(), nullable=False),
        _count("position"),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("holder", sa.String(255)),
        sa.Column("lease_expires_at", sa.BigInteger()),
        _count("attempts"),
        sa.Column("ok", sa.Boolean()),
        sa.Column("error", sa.Text()),
        *(_count(name) for name in ("requests", "tags", "added", "changed", "removed")),
        *(_count(name) for name in ("events", "tag_errors")),
        sa.Column("scanned_by", sa.String(255)),
        sa.Column("scanned_at", sa.BigInteger()),
        sa.Column("scanned_run", sa.BigInteger()),
        sa.ForeignKeyConstraint(
            ["account"],
            ["accounts.name"],
            name="fk_scan_jobs_account_accounts",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("account", "repository", name="pk_scan_jobs"),
    )
    op.create_index("ix_scan_jobs_run_id_status", "scan_jobs", ["run_id", "status"])
    op.create_index(
        "ix_scan_jobs_status_lease_expires_at", "scan_jobs", ["status", "lease_expires_at"]
    )
    op.create_table(
        "scan_requests",
        sa.Column("account", sa.String(ACCOUNT), nullable=False),
        sa.Column("requested_at", sa.BigInteger(), nullable=False),
        sa.Column("requested_by", sa.String(255)),
        sa.PrimaryKeyConstraint("account", name="pk_scan_requests"),
    )


def downgrade() -> None:
    op.drop_table("scan_requests")
    op.drop_index("ix_scan_jobs_status_lease_expires_at", table_name="scan_jobs")
    op.drop_index("ix_scan_jobs_run_id_status", table_name="scan_jobs")
    op.drop_table("scan_jobs")
