"""Scenario A's table: each terminal's tunnel address and the WireGuard key it sent.

vpn_configs   one row per terminal whose VPN configuration the operator generated; the address
              is stable across restarts and unpairs ("previously paired, VPN configured")
"""

from __future__ import annotations

import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from server.db.base import Base, UTCDateTime


class VpnConfigRow(Base):
    __tablename__ = "vpn_configs"

    serial: Mapped[str] = mapped_column(
        ForeignKey("terminals.serial", ondelete="CASCADE"), primary_key=True)
    tunnel_address: Mapped[str] = mapped_column(String(45), unique=True)
    public_key: Mapped[str | None] = mapped_column(String(44))  # the terminal's, as it sent it
    created_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime)
