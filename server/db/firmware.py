"""The firmware tables: the catalog of signed bundles, the pairing policy, upgrades in progress.

firmware_bundles   one row per bundle the operator added (the file is data_dir/firmware/<file>)
firmware_policy    one row: the minimum version a terminal must run to pair
firmware_upgrades  one row per terminal the gate is upgrading: the plan's origin, the step on
                   offer and since when it holds one of the gate's upgrade slots
"""

from __future__ import annotations

import datetime

from sqlalchemy import ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from server.db.base import Base, UTCDateTime

DEFAULT_MIN_PAIR_VERSION = 20230801  # architecture §2: "current" terminals, until the operator says


class FirmwareBundle(Base):
    __tablename__ = "firmware_bundles"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    version: Mapped[int]
    hardware: Mapped[str] = mapped_column(Text)  # JSON list, from the manifest
    install_from: Mapped[str] = mapped_column(Text)  # JSON list of {"min", "max"}
    size: Mapped[int]  # bytes of the whole bundle file
    sha256: Mapped[str] = mapped_column(String(64))  # of the whole bundle file
    manifest_digest: Mapped[str] = mapped_column(String(64), unique=True)
    signed_by: Mapped[str] = mapped_column(String(16))
    filename: Mapped[str] = mapped_column(String(200))
    added_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime)


class FirmwarePolicy(Base):
    __tablename__ = "firmware_policy"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)  # always 1
    min_pair_version: Mapped[int]
    updated_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime)


class FirmwareUpgrade(Base):
    __tablename__ = "firmware_upgrades"

    serial: Mapped[str] = mapped_column(
        ForeignKey("terminals.serial", ondelete="CASCADE"), primary_key=True
    )
    origin_version: Mapped[int]  # the version the current plan started from ("step i of n")
    bundle_id: Mapped[int | None]  # the step on offer
    offered_from: Mapped[int | None]  # the version the terminal ran when it was offered
    offered_at: Mapped[datetime.datetime | None] = mapped_column(UTCDateTime)  # slot held since
    completed_steps: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime)


def min_pair_version(session) -> int:
    """The policy's minimum version to pair, read in the caller's transaction.

    Approval refuses terminals below it, the gate upgrades them, and the status monitor shows
    them as needing an update (yellow): one policy, the operator's (`firmware policy`)."""
    policy = session.get(FirmwarePolicy, 1)
    return policy.min_pair_version if policy else DEFAULT_MIN_PAIR_VERSION
