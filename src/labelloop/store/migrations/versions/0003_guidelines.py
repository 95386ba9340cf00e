"""guidelines: versions, rules, exemplars, acknowledgements

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 16:07:39
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

import labelloop.store.base

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "guideline_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.String(length=20), nullable=False),
        sa.Column("major", sa.Integer(), nullable=True),
        sa.Column("minor", sa.Integer(), nullable=True),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("preamble", sa.Text(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", labelloop.store.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("published_by", sa.String(length=200), nullable=True),
        sa.Column("published_at", labelloop.store.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_guideline_versions_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_guideline_versions")),
        sa.UniqueConstraint(
            "project_id", "number", name=op.f("uq_guideline_versions_project_id_number")
        ),
    )
    with op.batch_alter_table("guideline_versions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_guideline_versions_project_id"), ["project_id"], unique=False
        )

    op.create_table(
        "guideline_acks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column(
            "acknowledged_at", labelloop.store.base.UTCDateTime(timezone=True), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_guideline_acks_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["guideline_versions.id"],
            name=op.f("fk_guideline_acks_version_id_guideline_versions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_guideline_acks")),
        sa.UniqueConstraint(
            "version_id", "user_id", name=op.f("uq_guideline_acks_version_id_user_id")
        ),
    )
    with op.batch_alter_table("guideline_acks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_guideline_acks_user_id"), ["user_id"], unique=False)

    op.create_table(
        "guideline_rules",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=20), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column(
            "labels",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["guideline_versions.id"],
            name=op.f("fk_guideline_rules_version_id_guideline_versions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_guideline_rules")),
        sa.UniqueConstraint("version_id", "key", name=op.f("uq_guideline_rules_version_id_key")),
    )
    with op.batch_alter_table("guideline_rules", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_guideline_rules_version_id"), ["version_id"], unique=False
        )

    op.create_table(
        "guideline_exemplars",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("rule_id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column(
            "label",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("why", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["item_id"],
            ["items.id"],
            name=op.f("fk_guideline_exemplars_item_id_items"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["rule_id"],
            ["guideline_rules.id"],
            name=op.f("fk_guideline_exemplars_rule_id_guideline_rules"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_guideline_exemplars")),
    )
    with op.batch_alter_table("guideline_exemplars", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_guideline_exemplars_item_id"), ["item_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_guideline_exemplars_rule_id"), ["rule_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("guideline_exemplars", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_guideline_exemplars_rule_id"))
        batch_op.drop_index(batch_op.f("ix_guideline_exemplars_item_id"))

    op.drop_table("guideline_exemplars")
    with op.batch_alter_table("guideline_rules", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_guideline_rules_version_id"))

    op.drop_table("guideline_rules")
    with op.batch_alter_table("guideline_acks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_guideline_acks_user_id"))

    op.drop_table("guideline_acks")
    with op.batch_alter_table("guideline_versions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_guideline_versions_project_id"))

    op.drop_table("guideline_versions")
