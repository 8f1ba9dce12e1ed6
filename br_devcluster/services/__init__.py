"""Local service launchers (Redis, SeaweedFS S3, moto S3, IMDS, Flower) for the devcluster and tests.

Each start_* picks free loopback ports, spawns the process with br_common.procs.spawn (own
session, log file in work_dir), waits for its port and returns a ServiceHandle; handle.stop()
stops it by PID. Secrets never go on a command line: 0600 files or the environment.
"""
from __future__ import annotations

from br_devcluster.services.flower import start_flower
from br_devcluster.services.handle import ServiceError, ServiceHandle
from br_devcluster.services.imds import RoleCredentials, instance_profile_env, start_imds
from br_devcluster.services.moto import bucket_policy, create_lock_bucket, create_user, enforce_iam, reset, \
    start_moto
from br_devcluster.services.redis import start_redis, url_with_password
from br_devcluster.services.s3_admin import admin_client, create_bucket
from br_devcluster.services.seaweedfs import start_seaweedfs

__all__ = [
    "RoleCredentials", "ServiceError", "ServiceHandle", "admin_client", "bucket_policy", "create_bucket",
    "create_lock_bucket", "create_user", "enforce_iam", "instance_profile_env", "reset", "start_flower",
    "start_imds", "start_moto", "start_redis", "start_seaweedfs", "url_with_password",
]
