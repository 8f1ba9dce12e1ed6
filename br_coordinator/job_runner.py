"""What every coordinator verb (backup, restore) does around its own work, written once.

    with connections(args, "backup", warn_credentials=True) as conn:      # storage URL, logging,
        job = JobRunner(conn.redis, spec, conn.settings.job_ttl_days, "backup")  # broker, PD
        return job.run(lambda previous, state: ..., refuse=lambda previous: "")

* `connections`: the storage URL parsed (one line when bad), logging set up with the URL's
  secrets masked, the broker pinged (one line, password redacted), PD reached; PD, TiKV and
  Redis errors while the job runs become one-line CommandErrors, and PD is closed at the end.
* `JobRunner`: the job lease (exactly one coordinator runs an identical command; the lease is
  renewed in the background and released at the end) and the job record (created or resumed;
  marked failed with the error's first line when the work raises).
"""
from __future__ import annotations

import argparse
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import redis

from br_common.fleet import redis_client
from br_common.fleet.broker import broker_problem
from br_common.fleet.config import FleetSettings
from br_common.fleet.jobs import JobSpec, JobState, JobStore, Lease
from br_common.pd_client import PDClient, PDError
from br_common.storage import Location, parse_storage_url
from br_common.tikv_client import RawKVError
from br_coordinator import flags, logging_setup
from br_coordinator.errors import CommandError
from br_coordinator.storage_spec import StorageSpecs

log = logging.getLogger("br")

LEASE_TTL_MS = 30_000
PD_RETRY_SECONDS = 60.0  # a job rides out a PD restart (planning, safe point, final steps) this long


# --- small helpers both verbs print with ---------------------------------------------------------
def one_line(exc: BaseException) -> str:
    """The first line of an error: what the job record keeps as its failure message."""
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0] if text else type(exc).__name__


def storage_location(args: argparse.Namespace) -> Location:
    """--storage (with the S3 flags) parsed; a bad URL is a one-line CommandError."""
    try:
        return parse_storage_url(args.storage, flags.s3_flags(args))
    except ValueError as exc:
        raise CommandError(f"invalid --storage: {exc}") from None


# --- connecting ------------------------------------------------------------------------------------
@dataclass
class Connections:
    location: Location
    specs: StorageSpecs
    settings: FleetSettings
    redis: redis.Redis
    pd: PDClient


@contextmanager
def connections(args: argparse.Namespace, warn_credentials: bool = False,
                errors: tuple[type[Exception], ...] = ()) -> Iterator[Connections]:
    """Everything a job needs before it starts; `errors` are further one-line failures of the job."""
    if not args.storage:
        raise CommandError("the storage is required: -s/--storage s3://bucket/prefix or local:///path")
    location = storage_location(args)
    specs = StorageSpecs(location, args.send_credentials_to_tikv)
    logging_setup.add_secrets(specs.secrets())
    logging_setup.job_started()
    if warn_credentials:
        _warn_about_credentials(location, args.send_credentials_to_tikv)
    settings = FleetSettings(broker=flags.resolve_broker(args))
    client = redis_client(settings.broker)
    try:
        client.ping()
    except redis.RedisError as exc:
        raise CommandError(broker_problem(settings.broker, exc)) from None
    try:
        pd = PDClient(args.pd, tls=flags.tls_config(args), retry_for=PD_RETRY_SECONDS)
    except PDError as exc:
        raise CommandError(str(exc)) from None
    try:
        yield Connections(location, specs, settings, client, pd)
    except (PDError, RawKVError, redis.RedisError, *errors) as exc:
        raise CommandError(str(exc)) from None
    finally:
        pd.close()


def _warn_about_credentials(location: Location, send: bool) -> None:
    has_keys = location.has_credentials
    if has_keys and not send:
        log.warning("the storage URL carries keys but --send-credentials-to-tikv is false: the agents use their "
                    "own credentials (instance profile) and the keys are not used")
    if send and not has_keys:
        log.warning("--send-credentials-to-tikv: the storage URL has no keys to send; agents use their own")


# --- lease and record ------------------------------------------------------------------------------
JobBody = Callable[[JobState | None, JobState], int]  # (record of an earlier run or None, this run's)


class JobRunner:
    """One job's lease and record: who runs it, and what a rerun resumes from."""

    def __init__(self, client: redis.Redis, spec: JobSpec, ttl_days: int, verb: str, resumable_for: int = 0) -> None:
        self.spec = spec
        self.verb = verb
        self.resumable_for = resumable_for  # seconds a rerun can resume an interrupted/failed run
        self.jobs = JobStore(client, spec.job_id(), ttl_days)
        self.lease = Lease(client, self.jobs.lease_key, LEASE_TTL_MS)

    @property
    def job_id(self) -> str:
        return self.jobs.job_id

    def run(self, body: JobBody, refuse: Callable[[JobState | None], str] = lambda previous: "") -> int:
        """Lease, then the record, then `body`. `refuse` may decline from the earlier run's record
        (a non-empty one line) before this run touches it, so a finished job's record stays as it is."""
        self.take_lease()
        try:
            previous = self.jobs.load()
            refusal = refuse(previous)
            if refusal:
                raise CommandError(refusal)
            try:
                return body(previous, self.jobs.create(self.spec))
            except KeyboardInterrupt:
                self.jobs.finish("interrupted", "interrupted (Ctrl-C or SIGTERM)", self.resumable_for)
                raise
            except BaseException as exc:
                self.jobs.finish("failed", one_line(exc), self.resumable_for)
                raise
        finally:
            self.lease.release()

    def take_lease(self) -> None:
        if self.lease.acquire():
            self.lease.start_keepalive()
            return
        holder, left = self.lease.holder() or "?", self.lease.remaining_ms() / 1000
        raise CommandError(f"the same {self.verb} (job {self.job_id}) is already running (coordinator {holder}); "
                           f"wait for it, or if it died, rerun in {left:.0f}s to resume it")
