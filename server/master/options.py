"""`batm-server run` options of the master service for fleets: replica, retention, brokers, batches.

  --replica NAME      this process is one of several server replicas sharing the ingestion
                      (shared subscriptions; its client id is batm:master:NAME, master/link.py)
  --history-days D    how long status history is kept (default 90; master/ingest.py)
  --brokers A,B,…     the fleet's brokers, this replica's own first (master/assignment.py)
  --ingest-window MS  how long a batch of terminals' messages waits for more before it is
                      stored (master/link.py)
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass

from batm_common.hostaddr import AddressError, ServerAddress
from server.master.assignment import parse_brokers

# Light on purpose: server/settings.py imports this for `--help` (no SQLAlchemy, no paho here).
RETENTION_DAYS = 90  # status history kept (the latest status itself is kept forever)
# After the first message of a batch, the ingestion waits up to this long for more, while they
# keep coming (master/link.py): a batch's fixed cost (session, its reads, commit) is paid once
# for all its messages. At a replica's share of 50,000 terminals (1,900 messages a second)
# 100 ms cost 25-35 % less server CPU per message than 25 ms (bench/ingest_cost.py,
# docs/deployment.md), and adds ≈ 100 ms to a status's lag, of the 1 s a fleet is held to.
INGEST_WINDOW_MS = 100.0
REPLICA_NAME = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


def replica_problem(name: object) -> str | None:
    """None for a usable replica name, else a sentence saying what is wrong with it."""
    if not isinstance(name, str) or not REPLICA_NAME.match(name):
        return (f"the replica name {name!r} must be 1-32 letters, digits, '-' or '_' "
                "(it becomes the server's MQTT client id batm:master:<name>)")
    return None


@dataclass(frozen=True)
class MasterOptions:
    replica: str | None = None
    history_days: float = RETENTION_DAYS
    brokers: tuple[ServerAddress, ...] = ()  # empty: one broker, this server's own
    ingest_window_ms: float = INGEST_WINDOW_MS


def _replica(text: str) -> str:
    problem = replica_problem(text)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return text


def _days(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 36500:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of days between 0 and 36500")
    return value


def _window(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 1000:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of milliseconds between 0 "
                                         "and 1000")
    return value


def _brokers(text: str) -> tuple[ServerAddress, ...]:
    try:
        return tuple(parse_brokers(text))
    except AddressError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_master_run_options(run: argparse.ArgumentParser) -> None:
    run.add_argument("--replica", type=_replica, metavar="NAME",
                     help="run as one of several replicas on one database: the MQTT ingestion "
                          "is shared with the others (client id batm:master:NAME)")
    run.add_argument("--history-days", type=_days, default=RETENTION_DAYS, metavar="D",
                     help=f"keep status history for D days (default {RETENTION_DAYS})")
    run.add_argument("--brokers", type=_brokers, default=(), metavar="HOST:PORT,...",
                     help="the fleet's brokers as terminals reach them, this replica's own "
                          "(--mqtt-listen) first: each terminal is assigned one by its serial")
    run.add_argument("--ingest-window", type=_window, default=INGEST_WINDOW_MS, metavar="MS",
                     help="wait up to MS milliseconds for more messages, while they keep "
                          f"coming, before storing a batch (default {INGEST_WINDOW_MS:g}; larger "
                          "batches cost less CPU per message and add up to MS to the status "
                          "lag)")


def master_options(args: argparse.Namespace) -> MasterOptions:
    return MasterOptions(replica=getattr(args, "replica", None),
                         history_days=getattr(args, "history_days", RETENTION_DAYS),
                         brokers=getattr(args, "brokers", ()),
                         ingest_window_ms=getattr(args, "ingest_window", INGEST_WINDOW_MS))
