"""`br restore` against moto with IAM enforced: s3:ListBucket + s3:GetObject are enough, whether
the agents get keys from the instance profile (IMDS) or sealed from the URL (-c); and the minimum
backup and restore policies are enough for a transactional backup and its restore."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError

from br_common.txn_checksum import TxnChecksum
from br_devcluster import cluster
from br_devcluster.load import KeyGen, LoadSpec
from br_devcluster.services import bucket_policy, create_user, enforce_iam, instance_profile_env, start_redis
from br_devcluster.txn_kv import TxnKV
from tests.fixtures.devcluster import DevCluster
from tests.integration.test_backup_support import HOST_ENV, AgentFleet, lift_iam, loaded_cluster, moto_url, \
    read_backupmeta, run_br, s3_admin, summary_value

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

KEYS = 6000
GEN = KeyGen(LoadSpec(keys=KEYS, value_size=100, seed=5))
RESTORE_ONLY = ["s3:ListBucket", "s3:GetObject"]


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevCluster]:
    config = cluster.ClusterConfig(stores=2, replicas=1, regions=4)
    with loaded_cluster(tmp_path_factory.mktemp("restore-s3-source"), config, GEN) as handle:
        yield handle


@pytest.fixture
def brokers(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Two Redis databases, one per cluster (one shared database works too: test_two_clusters)."""
    handle = start_redis(tmp_path / "redis")
    base = handle.url.rsplit("/", 1)[0]
    try:
        yield f"{base}/0", f"{base}/1"
    finally:
        handle.stop()


def _backup_then_restrict(source: DevCluster, moto_s3, broker: str, agent_fleets: list, work: Path):  # noqa: ANN001, ANN202
    """Back up with admin keys, then enforce IAM for a user allowed only to restore."""
    agent_fleets.append(AgentFleet(source, broker, work / "source-agents", env=HOST_ENV).start_all())
    done = run_br("backup", "raw", "--pd", source.pd_address, "-s", moto_url(moto_s3.endpoint, moto_s3.bucket),
                  broker=broker)
    assert done.returncode == 0, done.stderr
    agent_fleets[-1].stop_all()
    user = create_user(moto_s3.endpoint, "br-restore", bucket_policy(moto_s3.bucket, RESTORE_ONLY))
    enforce_iam(moto_s3.endpoint)
    as_user = boto3.client("s3", endpoint_url=moto_s3.endpoint, region_name="us-east-1",
                           aws_access_key_id=user.access_key.get_secret_value(),
                           aws_secret_access_key=user.secret_access_key.get_secret_value())
    with pytest.raises(ClientError, match="AccessDenied"):  # the policy really is that narrow
        as_user.put_object(Bucket=moto_s3.bucket, Key="probe", Body=b"x")
    return user


def test_list_and_get_are_enough_with_instance_profile(source, moto_s3, imds_endpoint, brokers, agent_fleets,  # noqa: ANN001
                                                       devcluster_factory, tmp_path: Path) -> None:
    user = _backup_then_restrict(source, moto_s3, brokers[0], agent_fleets, tmp_path)
    imds = imds_endpoint({"AccessKeyId": user.access_key.get_secret_value(),
                          "SecretAccessKey": user.secret_access_key.get_secret_value()})
    target = devcluster_factory(stores=2, replicas=2, regions=2)
    agent_fleets.append(AgentFleet(target, brokers[1], tmp_path / "agents", env=instance_profile_env(imds)).start_all())
    done = run_br("restore", "full", "--pd", target.pd_address, "-s", moto_url(moto_s3.endpoint, moto_s3.bucket),
                  broker=brokers[1])
    assert done.returncode == 0, done.stderr
    assert target.kv.checksum() == GEN.checksum()


def test_list_and_get_are_enough_with_sealed_url_keys(source, moto_s3, brokers, agent_fleets,  # noqa: ANN001
                                                      devcluster_factory, tmp_path: Path) -> None:
    user = _backup_then_restrict(source, moto_s3, brokers[0], agent_fleets, tmp_path)
    keys = (user.access_key.get_secret_value(), user.secret_access_key.get_secret_value())
    no_credentials = instance_profile_env("http://127.0.0.1:9") | {"AWS_EC2_METADATA_DISABLED": "true"}
    target = devcluster_factory(stores=1, replicas=1, regions=2)
    agent_fleets.append(AgentFleet(target, brokers[1], tmp_path / "agents", env=no_credentials).start_all())
    log_file = tmp_path / "restore.log"
    url = moto_url(moto_s3.endpoint, moto_s3.bucket, keys=keys)
    done = run_br("restore", "full", "--pd", target.pd_address, "-s", url, "-c", broker=brokers[1], log_file=log_file)
    assert done.returncode == 0, done.stderr
    assert target.kv.checksum() == GEN.checksum()
    for where, text in {"stdout": done.stdout, "stderr": done.stderr, "log": log_file.read_text()}.items():
        assert keys[1] not in text, f"secret key in {where}"


BACKUP_MINIMUM = ["s3:ListBucket", "s3:PutObject", "s3:AbortMultipartUpload"]  # deploy/iam/backup-policy.json


def test_minimum_policies_suffice_for_a_txn_backup_and_its_restore(source, moto_s3, imds_endpoint, brokers,  # noqa: ANN001
                                                                   agent_fleets, devcluster_factory,
                                                                   tmp_path: Path) -> None:
    """`br backup full` (the transactional key space: write and default files) by agents whose
    instance profile holds only the backup policy, then `br restore full` of it by agents holding
    only the restore policy (deploy/iam/), IAM enforced throughout. Runs last: it adds
    transactions to the source."""
    txn_gen = KeyGen(LoadSpec(keys=400, value_size=300, seed=9))  # long values: the default CF too
    with TxnKV(source.pd) as kv:
        kv.commit(txn_gen.pairs(0, 200))
        kv.commit([(key, value[:40]) for key, value in txn_gen.pairs(200, 400)])  # short: in the write CF
        expected = kv.checksum_at(b"", b"", source.pd.tso())
    users = [create_user(moto_s3.endpoint, name, bucket_policy(moto_s3.bucket, actions))
             for name, actions in (("br-backup", BACKUP_MINIMUM), ("br-restore", RESTORE_ONLY))]
    enforce_iam(moto_s3.endpoint)
    backup_env, restore_env = (instance_profile_env(imds_endpoint({
        "AccessKeyId": user.access_key.get_secret_value(),
        "SecretAccessKey": user.secret_access_key.get_secret_value()})) for user in users)
    url = moto_url(moto_s3.endpoint, moto_s3.bucket)

    agent_fleets.append(AgentFleet(source, brokers[0], tmp_path / "source-agents", env=backup_env).start_all())
    done = run_br("backup", "full", "--pd", source.pd_address, "-s", url, broker=brokers[0])
    assert done.returncode == 0, done.stderr
    assert summary_value(done.stdout, "files") != "0"
    target = devcluster_factory(stores=2, replicas=1, regions=3)
    agent_fleets.append(AgentFleet(target, brokers[1], tmp_path / "agents", env=restore_env).start_all())
    done = run_br("restore", "full", "--pd", target.pd_address, "-s", url, broker=brokers[1])
    assert done.returncode == 0, done.stderr
    assert summary_value(done.stdout, "checksum") == "verified"
    with TxnChecksum(target.pd) as txn:
        assert txn.checksum_at(b"", b"", target.pd.tso()) == expected
    lift_iam(moto_s3.endpoint)
    assert {f.cf for f in read_backupmeta(s3_admin(moto_s3.endpoint), moto_s3.bucket, "").files} == {"default", "write"}
