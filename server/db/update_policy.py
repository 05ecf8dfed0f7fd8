"""Who needs a firmware update: the operator's minimum version and the catalog, read together.

A terminal needs an update (the status monitor's yellow) when it runs a version below the
minimum to pair (`batm-server firmware policy`; the gate upgrades it and approval refuses it), or
when the catalog holds a newer bundle installable from its version (an edge of the upgrade graph
leaves it: the operator published an update it can take). The same rule in Python (one row's
view) and in SQL (the list filters and sorts 50,000 terminals by it without loading them).

Kept with the tables it reads so that the master domain (the CLI's `terminal status`) and the
console judge alike; the bundle's hardware is not checked (the server does not store a
terminal's hardware once it paired), the terminal checks every bundle again itself.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, false, or_, select
from sqlalchemy.orm import Session

from server.db.firmware import FirmwareBundle, min_pair_version


@dataclass(frozen=True)
class Edge:
    """A bundle as an edge of the upgrade graph: from [low, high] (None: open) to `version`."""

    low: int | None
    high: int | None
    version: int

    def leaves(self, running: int) -> bool:
        return ((self.low is None or running >= self.low)
                and (self.high is None or running <= self.high) and running < self.version)


@dataclass(frozen=True)
class UpdatePolicy:
    min_version: int
    edges: tuple[Edge, ...] = ()

    def needs_update(self, version: int | None) -> bool:
        if version is None:
            return False  # never reported: nothing to judge
        return version < self.min_version or any(e.leaves(version) for e in self.edges)

    def needs_update_sql(self, version: ColumnElement) -> ColumnElement[bool]:
        """The same rule as a SQL condition on `version` (false for NULL)."""
        clauses = [version < self.min_version]
        for edge in self.edges:
            parts = [version < edge.version]
            if edge.low is not None:
                parts.append(version >= edge.low)
            if edge.high is not None:
                parts.append(version <= edge.high)
            clauses.append(and_(*parts))
        return and_(version.is_not(None), or_(false(), *clauses))


def update_policy(session: Session) -> UpdatePolicy:
    """The policy and the catalog's edges, read in the caller's transaction."""
    edges = []
    for version, install_from in session.execute(
            select(FirmwareBundle.version, FirmwareBundle.install_from)):
        for bounds in json.loads(install_from):
            edges.append(Edge(bounds.get("min"), bounds.get("max"), version))
    return UpdatePolicy(min_pair_version(session), tuple(sorted(set(edges),
                                                               key=lambda e: e.version)))
