"""The policy store and API keys.

Revision ID: 0001
Revises:
Create Date: 2026-01-01 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "policy_sets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("active_version", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_policy_sets")),
        sa.UniqueConstraint("name", name=op.f("uq_policy_sets_name")),
    )
    op.create_table(
        "policy_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("policy_set_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("content_hash", sa.String(length=80), nullable=False),
        sa.Column("compiled", sa.LargeBinary(), nullable=False),
        sa.Column("policy_ids", sa.JSON(), nullable=False),
        sa.Column("published_by", sa.String(length=200), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("number >= 1", name=op.f("ck_policy_versions_number_positive")),
        sa.ForeignKeyConstraint(["policy_set_id"], ["policy_sets.id"], ondelete="CASCADE",
                                name=op.f("fk_policy_versions_policy_set_id_policy_sets")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_policy_versions")),
        sa.UniqueConstraint("policy_set_id", "number",
                            name=op.f("uq_policy_versions_policy_set_id_number")),
    )
    with op.batch_alter_table("policy_versions") as batch_op:
        batch_op.create_index(batch_op.f("ix_policy_versions_policy_set_id"),
                              ["policy_set_id"], unique=False)

    op.create_table(
        "policy_files",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("path", sa.String(length=1024), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["version_id"], ["policy_versions.id"], ondelete="CASCADE",
                                name=op.f("fk_policy_files_version_id_policy_versions")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_policy_files")),
        sa.UniqueConstraint("version_id", "path", name=op.f("uq_policy_files_version_id_path")),
    )
    op.create_table(
        "policy_activations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("policy_set_id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("activated_by", sa.String(length=200), nullable=False),
        sa.Column("activated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["policy_set_id"], ["policy_sets.id"], ondelete="CASCADE",
                                name=op.f("fk_policy_activations_policy_set_id_policy_sets")),
        sa.ForeignKeyConstraint(["version_id"], ["policy_versions.id"], ondelete="CASCADE",
                                name=op.f("fk_policy_activations_version_id_policy_versions")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_policy_activations")),
    )
    with op.batch_alter_table("policy_activations") as batch_op:
        batch_op.create_index(batch_op.f("ix_policy_activations_policy_set_id"),
                              ["policy_set_id"], unique=False)

    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("roles", sa.JSON(), nullable=False),
        sa.Column("policy_sets", sa.JSON(), nullable=True),
        sa.Column("trusted_claims", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_keys_key_hash")),
        sa.UniqueConstraint("name", name=op.f("uq_api_keys_name")),
    )


def downgrade() -> None:
    op.drop_table("api_keys")
    with op.batch_alter_table("policy_activations") as batch_op:
        batch_op.drop_index(batch_op.f("ix_policy_activations_policy_set_id"))
    op.drop_table("policy_activations")
    op.drop_table("policy_files")
    with op.batch_alter_table("policy_versions") as batch_op:
        batch_op.drop_index(batch_op.f("ix_policy_versions_policy_set_id"))
    op.drop_table("policy_versions")
    op.drop_table("policy_sets")
