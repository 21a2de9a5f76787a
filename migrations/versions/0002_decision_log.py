"""The decision log: records, their policies, the hash chain's head.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 12:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

GENESIS_HASH = "0" * 64

_INDEXES = [
    ("ix_decision_log_time", ["time"]),
    ("ix_decision_log_subject_time", ["subject", "time"]),
    ("ix_decision_log_caller_time", ["caller", "time"]),
    ("ix_decision_log_action_time", ["action", "time"]),
    ("ix_decision_log_resource_type_resource_id_time", ["resource_type", "resource_id", "time"]),
    ("ix_decision_log_resource_id_time", ["resource_id", "time"]),
    ("ix_decision_log_decision_time", ["decision", "time"]),
    ("ix_decision_log_policy_set_policy_version_time", ["policy_set", "policy_version", "time"]),
]


def upgrade() -> None:
    op.create_table(
        "decision_log",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("decision_id", sa.String(length=64), nullable=True),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("caller", sa.String(length=128), nullable=False),
        sa.Column("policy_set", sa.String(length=128), nullable=True),
        sa.Column("policy_version", sa.Integer(), nullable=True),
        sa.Column("subject", sa.String(length=512), nullable=True),
        sa.Column("action", sa.String(length=256), nullable=True),
        sa.Column("resource_type", sa.String(length=256), nullable=True),
        sa.Column("resource_id", sa.String(length=1024), nullable=True),
        sa.Column("decision", sa.String(length=8), nullable=True),
        sa.Column("claims", sa.JSON(), nullable=True),
        sa.Column("redacted", sa.JSON(), nullable=True),
        sa.Column("action_attributes", sa.JSON(), nullable=True),
        sa.Column("resource_attributes", sa.JSON(), nullable=True),
        sa.Column("context", sa.JSON(), nullable=True),
        sa.Column("policies", sa.JSON(), nullable=True),
        sa.Column("reasons", sa.JSON(), nullable=True),
        sa.Column("errors", sa.JSON(), nullable=True),
        sa.Column("evaluation_us", sa.BigInteger(), nullable=True),
        sa.Column("details", sa.JSON(), nullable=True),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.CheckConstraint("kind IN ('decision', 'checkpoint')", name=op.f("ck_decision_log_kind")),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_decision_log")),
        sa.UniqueConstraint("decision_id", name=op.f("uq_decision_log_decision_id")),
    )
    with op.batch_alter_table("decision_log") as batch_op:
        for name, columns in _INDEXES:
            batch_op.create_index(name, columns, unique=False)

    op.create_table(
        "decision_log_policies",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("policy_id", sa.String(length=256), nullable=False),
        sa.ForeignKeyConstraint(["seq"], ["decision_log.seq"], ondelete="CASCADE",
                                onupdate="CASCADE",
                                name=op.f("fk_decision_log_policies_seq_decision_log")),
        sa.PrimaryKeyConstraint("seq", "policy_id", name=op.f("pk_decision_log_policies")),
    )
    with op.batch_alter_table("decision_log_policies") as batch_op:
        batch_op.create_index("ix_decision_log_policies_policy_id_seq", ["policy_id", "seq"],
                              unique=False)

    head = op.create_table(
        "audit_chain_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_audit_chain_head_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_chain_head")),
    )
    op.bulk_insert(head, [{"id": 1, "seq": 0, "hash": GENESIS_HASH}])


def downgrade() -> None:
    op.drop_table("audit_chain_head")
    with op.batch_alter_table("decision_log_policies") as batch_op:
        batch_op.drop_index("ix_decision_log_policies_policy_id_seq")
    op.drop_table("decision_log_policies")
    with op.batch_alter_table("decision_log") as batch_op:
        for name, _ in reversed(_INDEXES):
            batch_op.drop_index(name)
    op.drop_table("decision_log")
