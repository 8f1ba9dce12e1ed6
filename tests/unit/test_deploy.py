"""Checks of deploy/ and docs/DEPLOY.md: least-privilege IAM, a lint-clean and deployable
CloudFormation stack, hardened systemd units that work for the agent, documented settings and a
Kubernetes manifest with IRSA and a locked-down container.

Tools that may be missing (cfn-lint, moto, systemd-analyze, systemd-sysusers, systemd-tmpfiles,
root, a kernel with PR_SET_MDWE) make their test skip with the reason; everything else is plain
file parsing.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
IAM = DEPLOY / "iam"
CFN_TEMPLATE = DEPLOY / "cloudformation" / "br-fleet-iam.yaml"
AGENT_UNIT = DEPLOY / "systemd" / "br-agent.service"
FLOWER_UNIT = DEPLOY / "systemd" / "br-flower.service"
SYSUSERS = DEPLOY / "systemd" / "br-fleet.sysusers.conf"
TMPFILES = DEPLOY / "systemd" / "br-agent.tmpfiles.conf"
AGENT_TOML = DEPLOY / "config" / "agent.toml.example"
AGENT_ENV = DEPLOY / "config" / "agent.env.example"
FLOWER_ENV = DEPLOY / "config" / "flower.env.example"
K8S_AGENT = DEPLOY / "kubernetes" / "br-agent.yaml"
K8S_PATCH = DEPLOY / "kubernetes" / "tidbcluster-tikv-br-agent.yaml"
DEPLOY_MD = ROOT / "docs" / "DEPLOY.md"

BACKUP_ACTIONS = {"s3:ListBucket", "s3:PutObject", "s3:AbortMultipartUpload"}
RESTORE_ACTIONS = {"s3:ListBucket", "s3:GetObject"}
KMS_BACKUP_ACTIONS = {"kms:GenerateDataKey", "kms:Decrypt"}
KMS_RESTORE_ACTIONS = {"kms:Decrypt"}

PLACEHOLDERS = {"Partition": "aws", "BucketName": "br-unit-backups", "Prefix": "prod/cluster-1",
                "Region": "us-east-1",
                "KmsKeyArn": "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"}


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------

def _load_json(path: Path) -> dict:
    return json.loads(path.read_text())


def _actions(statement: dict) -> set[str]:
    action = statement["Action"]
    return {action} if isinstance(action, str) else set(action)


def _all_actions(doc: dict) -> set[str]:
    return set().union(*(_actions(s) for s in doc["Statement"]))


def _render(path: Path, values: dict[str, str] = PLACEHOLDERS) -> str:
    text = path.read_text()
    for name, value in values.items():
        text = text.replace("${%s}" % name, value)
    assert "${" not in text, f"{path.name}: unreplaced placeholder"
    return text


class _CfnLoader(yaml.SafeLoader):
    """YAML loader that turns CloudFormation short-form tags into their long form."""


def _cfn_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node):
    key = "Ref" if suffix == "Ref" else "Condition" if suffix == "Condition" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {key: value}


_CfnLoader.add_multi_constructor("!", _cfn_tag)


def _template() -> dict:
    return yaml.load(CFN_TEMPLATE.read_text(), Loader=_CfnLoader)  # noqa: S506 (SafeLoader subclass)


def _unsub(value):
    """A template policy with Fn::Sub strings turned into the JSON files' placeholder spelling."""
    if isinstance(value, dict):
        if set(value) == {"Fn::Sub"} and isinstance(value["Fn::Sub"], str):
            return value["Fn::Sub"].replace("${AWS::Partition}", "${Partition}").replace(
                "${AWS::Region}", "${Region}")
        return {k: _unsub(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unsub(v) for v in value]
    return value


def _unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """systemd unit -> {section: {key: [values in order]}} (comments and blank lines dropped)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        assert current is not None, f"{path.name}: {line!r} outside a section"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def _one(unit: dict, key: str, section: str = "Service") -> str:
    values = unit[section].get(key)
    assert values, f"{key}= missing from [{section}]"
    assert len(values) == 1, f"{key}= given {len(values)} times"
    return values[0]


def _deploy_md_setting_keys() -> list[str]:
    """The `key` column of DEPLOY.md's "Agent settings" table."""
    text = DEPLOY_MD.read_text()
    section = text.split("### Agent settings", 1)[1].split("\n### ", 1)[0]
    return re.findall(r"^\| `([a-z_]+)` \|", section, flags=re.M)


def _toml_keys_with_lines(path: Path) -> list[tuple[str, int]]:
    keys = []
    for number, line in enumerate(path.read_text().splitlines()):
        match = re.match(r"^([a-z_]+)\s*=", line)
        if match:
            keys.append((match.group(1), number))
    return keys


def _env_assignments(path: Path) -> list[tuple[str, str, int]]:
    out = []
    for number, line in enumerate(path.read_text().splitlines()):
        match = re.match(r"^([A-Z][A-Z0-9_]*)=(.*)$", line)
        if match:
            value = match.group(2)
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            out.append((match.group(1), value, number))
    return out


def _documented_block(lines: list[str], number: int, assignment: re.Pattern) -> bool:
    """Walking up from line `number` over assignments, a comment comes before a blank line."""
    i = number - 1
    while i >= 0:
        line = lines[i].strip()
        if not line:
            return False
        if assignment.match(line):
            i -= 1
            continue
        return line.startswith("#") and len(line.lstrip("#").strip()) > 0
    return False


def _cfn_lint() -> list[str] | None:
    exe = shutil.which("cfn-lint") or str(Path(sys.executable).with_name("cfn-lint"))
    return [exe] if Path(exe).exists() else None


# --------------------------------------------------------------------------------------------
# IAM policies
# --------------------------------------------------------------------------------------------

def test_backup_policy_holds_exactly_list_put_abort():
    doc = _load_json(IAM / "backup-policy.json")
    assert _all_actions(doc) == BACKUP_ACTIONS
    by_sid = {s["Sid"]: s for s in doc["Statement"]}
    assert _actions(by_sid["ListBackupPrefix"]) == {"s3:ListBucket"}
    assert _actions(by_sid["WriteBackupObjects"]) == {"s3:PutObject", "s3:AbortMultipartUpload"}


def test_restore_policy_holds_exactly_list_get():
    doc = _load_json(IAM / "restore-policy.json")
    assert _all_actions(doc) == RESTORE_ACTIONS
    by_sid = {s["Sid"]: s for s in doc["Statement"]}
    assert _actions(by_sid["ListBackupPrefix"]) == {"s3:ListBucket"}
    assert _actions(by_sid["ReadBackupObjects"]) == {"s3:GetObject"}


def test_kms_statements_hold_exactly_generate_and_decrypt():
    doc = _load_json(IAM / "kms-statements.json")
    by_sid = {s["Sid"]: s for s in doc["Statement"]}
    assert set(by_sid) == {"KmsForBackup", "KmsForRestore"}
    assert _actions(by_sid["KmsForBackup"]) == KMS_BACKUP_ACTIONS
    assert _actions(by_sid["KmsForRestore"]) == KMS_RESTORE_ACTIONS
    for statement in doc["Statement"]:
        assert statement["Resource"] == "${KmsKeyArn}"
        # the key is usable through S3 only
        assert statement["Condition"] == {"StringEquals": {"kms:ViaService": "s3.${Region}.amazonaws.com"}}


@pytest.mark.parametrize("name", ["backup-policy.json", "restore-policy.json", "kms-statements.json"])
def test_policies_are_narrow(name):
    doc = _load_json(IAM / name)
    assert doc["Version"] == "2012-10-17"
    for statement in doc["Statement"]:
        assert statement["Effect"] == "Allow"
        assert "NotAction" not in statement and "NotResource" not in statement
        for action in _actions(statement):
            assert "*" not in action and "?" not in action, f"wildcard action {action}"
            assert not action.split(":")[1].startswith("Delete"), f"delete action {action}"
        resources = statement["Resource"]
        for resource in [resources] if isinstance(resources, str) else resources:
            assert resource != "*"
            if resource.startswith("arn:${Partition}:s3:::"):
                assert resource in ("arn:${Partition}:s3:::${BucketName}",
                                    "arn:${Partition}:s3:::${BucketName}/${Prefix}/*"), resource
        if _actions(statement) == {"s3:ListBucket"}:
            # listing only under the prefix
            assert statement["Condition"] == {"StringLike": {"s3:prefix": ["${Prefix}", "${Prefix}/*"]}}
    # rendered, each file is a valid JSON policy with no placeholder left
    json.loads(_render(IAM / name))


# --------------------------------------------------------------------------------------------
# CloudFormation
# --------------------------------------------------------------------------------------------

def test_cloudformation_policies_equal_the_json_files():
    resources = _template()["Resources"]
    for resource, path in (("BackupPolicy", "backup-policy.json"), ("RestorePolicy", "restore-policy.json"),
                           ("KmsPolicy", "kms-statements.json")):
        assert resources[resource]["Type"] == "AWS::IAM::ManagedPolicy"
        assert _unsub(resources[resource]["Properties"]["PolicyDocument"]) == _load_json(IAM / path), resource
    assert resources["KmsPolicy"]["Condition"] == "HasKmsKey"


def test_cloudformation_role_profile_and_outputs():
    template = _template()
    resources = template["Resources"]
    role = resources["AgentRole"]["Properties"]
    assert role["AssumeRolePolicyDocument"]["Statement"] == [
        {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]
    assert role["ManagedPolicyArns"] == [{"Ref": "BackupPolicy"}, {"Ref": "RestorePolicy"}]
    assert "Policies" not in role  # no inline policy beside the checked managed ones
    assert resources["AgentInstanceProfile"]["Type"] == "AWS::IAM::InstanceProfile"
    assert resources["AgentInstanceProfile"]["Properties"]["Roles"] == [{"Ref": "AgentRole"}]
    assert set(template["Parameters"]) >= {"BucketName", "Prefix", "KmsKeyArn", "CreateBucket", "ObjectLock"}
    bucket = resources["BackupBucket"]
    assert bucket["Condition"] == "CreateBucket"
    assert bucket["DeletionPolicy"] == "Retain"
    assert bucket["Properties"]["ObjectLockEnabled"]["Fn::If"][0] == "CreateObjectLockBucket"
    assert set(template["Outputs"]) >= {"InstanceProfileName", "AgentRoleArn", "BackupPolicyArn",
                                        "RestorePolicyArn", "StorageUrl"}


def test_cloudformation_passes_cfn_lint():
    cmd = _cfn_lint()
    if cmd is None:
        pytest.skip("cfn-lint is not installed (pip install cfn-lint; moto[server] pulls it in)")
    result = subprocess.run([*cmd, "--include-checks", "I", "--", str(CFN_TEMPLATE)],
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, f"cfn-lint:\n{result.stdout}\n{result.stderr}"
    assert result.stdout.strip() == ""


def _moto():
    return pytest.importorskip("moto", reason="moto is not installed (pip install 'moto[server]')")


@pytest.mark.filterwarnings("ignore:Tried to parse:UserWarning")  # moto lacks AWS::S3::BucketPolicy
@pytest.mark.parametrize("variant", ["minimal", "everything"])
def test_cloudformation_stack_deploys_on_moto(variant, monkeypatch):
    moto = _moto()
    import boto3  # noqa: PLC0415

    for var in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    params = {"BucketName": PLACEHOLDERS["BucketName"], "Prefix": PLACEHOLDERS["Prefix"]}
    if variant == "everything":
        params |= {"KmsKeyArn": PLACEHOLDERS["KmsKeyArn"], "CreateBucket": "true", "ObjectLock": "true",
                   "EksOidcProvider": "oidc.eks.us-east-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE"}
    with moto.mock_aws():
        cf = boto3.client("cloudformation", region_name="us-east-1")
        cf.create_stack(StackName="br-fleet-iam", TemplateBody=CFN_TEMPLATE.read_text(),
                        Capabilities=["CAPABILITY_IAM"],
                        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in params.items()])
        stack = cf.describe_stacks(StackName="br-fleet-iam")["Stacks"][0]
        assert stack["StackStatus"] == "CREATE_COMPLETE"
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}
        assert outputs["StorageUrl"] == f"s3://{params['BucketName']}/{params['Prefix']}"

        iam = boto3.client("iam", region_name="us-east-1")
        documents = {}
        for name in ("BackupPolicyArn", "RestorePolicyArn", "KmsPolicyArn"):
            if name not in outputs:
                continue
            policy = iam.get_policy(PolicyArn=outputs[name])["Policy"]
            version = iam.get_policy_version(PolicyArn=outputs[name], VersionId=policy["DefaultVersionId"])
            document = version["PolicyVersion"]["Document"]
            documents[name] = json.loads(document) if isinstance(document, str) else document
        assert documents["BackupPolicyArn"] == json.loads(_render(IAM / "backup-policy.json"))
        assert documents["RestorePolicyArn"] == json.loads(_render(IAM / "restore-policy.json"))
        if variant == "everything":
            assert documents["KmsPolicyArn"] == json.loads(_render(IAM / "kms-statements.json"))
        else:
            assert "KmsPolicyArn" not in outputs and "IrsaRoleArn" not in outputs and "BucketArn" not in outputs

        profile = iam.get_instance_profile(InstanceProfileName=outputs["InstanceProfileName"])["InstanceProfile"]
        assert [r["Arn"] for r in profile["Roles"]] == [outputs["AgentRoleArn"]]
        # (moto's CloudFormation does not attach ManagedPolicyArns: the template test checks them)
        if variant == "everything":
            irsa = iam.get_role(RoleName=outputs["IrsaRoleArn"].rsplit("/", 1)[1])["Role"]
            trust = irsa["AssumeRolePolicyDocument"]
            trust = json.loads(trust) if isinstance(trust, str) else trust
            (statement,) = trust["Statement"]
            assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
            assert statement["Condition"]["StringEquals"][
                f"{params['EksOidcProvider']}:sub"] == "system:serviceaccount:tidb:br-agent"
            boto3.client("s3", region_name="us-east-1").head_bucket(Bucket=params["BucketName"])


def test_policies_enforced_by_moto_iam():
    """Backup may put and abort but not read or delete; restore may read but not write; both
    only under the prefix. (moto does not evaluate the s3:prefix condition of ListBucket.)"""
    moto = _moto()
    import boto3  # noqa: PLC0415
    from botocore.exceptions import ClientError  # noqa: PLC0415
    from moto.core import set_initial_no_auth_action_count  # noqa: PLC0415

    bucket, prefix = PLACEHOLDERS["BucketName"], PLACEHOLDERS["Prefix"]

    def code(call, **kwargs) -> str:
        try:
            call(Bucket=bucket, **kwargs)
            return "ok"
        except ClientError as exc:
            return exc.response["Error"]["Code"]

    # the 9 unauthenticated setup calls below; everything after them is checked against IAM
    @set_initial_no_auth_action_count(9)
    @moto.mock_aws
    def run() -> None:
        admin_s3 = boto3.client("s3", region_name="us-east-1")
        admin_s3.create_bucket(Bucket=bucket)                                              # 1
        admin_s3.put_object(Bucket=bucket, Key=f"{prefix}/old/backupmeta", Body=b"m")       # 2
        admin_s3.put_object(Bucket=bucket, Key="elsewhere/x", Body=b"x")                   # 3
        iam = boto3.client("iam", region_name="us-east-1")
        clients = {}
        for role in ("backup", "restore"):
            iam.create_user(UserName=role)                                                 # 4, 7
            iam.put_user_policy(UserName=role, PolicyName=role,                            # 5, 8
                                PolicyDocument=_render(IAM / f"{role}-policy.json"))
            key = iam.create_access_key(UserName=role)["AccessKey"]                        # 6, 9
            clients[role] = boto3.client("s3", region_name="us-east-1", aws_access_key_id=key["AccessKeyId"],
                                         aws_secret_access_key=key["SecretAccessKey"])
        backup, restore = clients["backup"], clients["restore"]
        assert code(backup.put_object, Key="elsewhere/1.sst", Body=b"x") == "AccessDenied"
        assert code(backup.put_object, Key=f"{prefix}-other/1.sst", Body=b"x") == "AccessDenied"
        assert code(backup.put_object, Key=f"{prefix}/new/1.sst", Body=b"x") == "ok"
        assert code(backup.get_object, Key=f"{prefix}/old/backupmeta") == "AccessDenied"
        assert code(backup.head_object, Key=f"{prefix}/old/backupmeta") in ("AccessDenied", "403")
        assert code(backup.delete_object, Key=f"{prefix}/old/backupmeta") == "AccessDenied"
        assert code(backup.list_objects_v2, Prefix=f"{prefix}/old/backupmeta") == "ok"
        upload = backup.create_multipart_upload(Bucket=bucket, Key=f"{prefix}/new/big.sst")["UploadId"]
        assert code(backup.abort_multipart_upload, Key=f"{prefix}/new/big.sst", UploadId=upload) == "ok"
        assert code(restore.get_object, Key=f"{prefix}/old/backupmeta") == "ok"
        assert code(restore.get_object, Key="elsewhere/x") == "AccessDenied"
        assert code(restore.put_object, Key=f"{prefix}/x", Body=b"x") == "AccessDenied"
        assert code(restore.delete_object, Key=f"{prefix}/old/backupmeta") == "AccessDenied"
        assert code(restore.list_objects_v2, Prefix=f"{prefix}/") == "ok"

    run()


# --------------------------------------------------------------------------------------------
# systemd units
# --------------------------------------------------------------------------------------------

HARDENING = {
    "NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
    "PrivateDevices": "yes", "ProtectKernelTunables": "yes", "ProtectKernelModules": "yes",
    "ProtectKernelLogs": "yes", "ProtectControlGroups": "yes", "CapabilityBoundingSet": "",
    "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX", "LockPersonality": "yes",
    "MemoryDenyWriteExecute": "yes", "RestrictSUIDSGID": "yes", "RestrictNamespaces": "yes",
    "Nice": "10", "CPUWeight": "20", "IOWeight": "20", "Restart": "on-failure",
    "KillMode": "control-group",
}


@pytest.mark.parametrize("path,user", [(AGENT_UNIT, "br-agent"), (FLOWER_UNIT, "br-flower")])
def test_units_are_hardened(path, user):
    unit = _unit(path)
    for key, value in HARDENING.items():
        assert _one(unit, key) == value, f"{path.name}: {key}"
    assert _one(unit, "User") == user and _one(unit, "Group") == user
    assert unit["Service"]["SystemCallFilter"][0] == "@system-service"
    io_class = _one(unit, "IOSchedulingClass")
    assert io_class in ("idle", "best-effort")
    if io_class == "best-effort":
        assert _one(unit, "IOSchedulingPriority") == "7"
    # the state directory is the only writable path
    state = f"/var/lib/{user}"
    assert _one(unit, "StateDirectory") == user
    assert unit["Service"]["ReadWritePaths"] == [state]
    for key in ("ReadWriteDirectories", "LogsDirectory", "CacheDirectory", "RuntimeDirectory",
                "ConfigurationDirectory", "DynamicUser", "AmbientCapabilities"):
        assert unit["Service"].get(key) in (None, [""]), f"{path.name}: {key}"
    # no secret in the unit: settings and secrets come from the EnvironmentFile
    for key in ("Environment",):
        assert key not in unit["Service"]
    assert _one(unit, "WantedBy", "Install") == "multi-user.target"


def test_agent_unit_runs_the_documented_config():
    unit = _unit(AGENT_UNIT)
    assert _one(unit, "ExecStart") == "/opt/br-fleet/bin/br-agent --config /etc/br-fleet/agent.toml"
    assert _one(unit, "EnvironmentFile") == "/etc/br-fleet/agent.env"
    docs = DEPLOY_MD.read_text()
    assert "/etc/br-fleet/agent.toml" in docs and "/etc/br-fleet/agent.env" in docs
    assert AGENT_TOML.read_text().startswith("# /etc/br-fleet/agent.toml")
    assert AGENT_ENV.read_text().startswith("# /etc/br-fleet/agent.env")
    # the staging dir of the documented config lies inside the only writable path
    staging = tomllib.loads(AGENT_TOML.read_text())["staging_dir"]
    assert Path(staging).is_relative_to("/var/lib/br-agent")


def test_flower_unit_runs_with_auth_from_its_env_file():
    unit = _unit(FLOWER_UNIT)
    assert _one(unit, "EnvironmentFile") == "/etc/br-fleet/flower.env"
    assert _one(unit, "ExecStart") == "/opt/br-fleet/bin/br-flower"
    env = {k: v for k, v, _ in _env_assignments(FLOWER_ENV)}
    assert env["FLOWER_ADDRESS"] == "127.0.0.1"
    assert env["FLOWER_PERSISTENT"] == "true"
    assert env["FLOWER_DB"].startswith("/var/lib/br-flower/")
    assert re.fullmatch(r"[^:,]+:[^,]+", env["FLOWER_BASIC_AUTH"])
    assert env["CELERY_BROKER_URL"].startswith("rediss://")
    assert "ssl_cert_reqs=required" in env["CELERY_BROKER_URL"]


def _verify_copy(path: Path, tmp_path: Path) -> Path:
    """The unit with its ExecStart binary replaced by one that exists here (verify checks it)."""
    text = path.read_text().replace("/opt/br-fleet/bin/br-agent", shutil.which("true") or "/bin/true")
    text = text.replace("/opt/br-fleet/bin/br-flower", shutil.which("true") or "/bin/true")
    copy = tmp_path / path.name
    copy.write_text(text)
    return copy


@pytest.mark.parametrize("path", [AGENT_UNIT, FLOWER_UNIT])
def test_units_pass_systemd_analyze(path, tmp_path):
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    copy = _verify_copy(path, tmp_path)
    verify = subprocess.run(["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, timeout=60)
    # verify exits 0 on unknown keys and only prints them: any output is a finding
    assert verify.returncode == 0 and not verify.stdout.strip() and not verify.stderr.strip(), \
        f"systemd-analyze verify {path.name}:\n{verify.stdout}{verify.stderr}"
    security = subprocess.run(["systemd-analyze", "security", "--offline=true", "--no-pager", str(copy)],
                              capture_output=True, text=True, timeout=60)
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", security.stdout + security.stderr)
    if match is None:
        pytest.skip(f"systemd-analyze security --offline unsupported here: {security.stderr.strip()[:200]}")
    assert float(match.group(1)) <= 2.0, security.stdout


def test_sysusers_creates_the_service_users(tmp_path):
    if shutil.which("systemd-sysusers") is None:
        pytest.skip("systemd-sysusers is not installed")
    (tmp_path / "etc" / "sysusers.d").mkdir(parents=True)
    shutil.copy(SYSUSERS, tmp_path / "etc" / "sysusers.d" / "br-fleet.conf")
    result = subprocess.run(["systemd-sysusers", f"--root={tmp_path}", "br-fleet.conf"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    users = {line.split(":")[0]: line.split(":") for line in (tmp_path / "etc" / "passwd").read_text().splitlines()}
    for name in ("br-agent", "br-flower"):
        assert users[name][5] == f"/var/lib/{name}" and users[name][6] == "/usr/sbin/nologin"
        assert int(users[name][2]) < 1000  # a system user
    groups = {line.split(":")[0] for line in (tmp_path / "etc" / "group").read_text().splitlines()}
    assert {"br-agent", "br-flower"} <= groups


def _acl_supported(path: Path) -> bool:
    try:
        os.setxattr(path, "user.br-fleet-test", b"1")
    except OSError:
        return False
    return True


TIKV_UID, AGENT_UID, OTHER_UID = 64101, 64102, 64103


@pytest.fixture
def open_tmp_path():
    """A temporary directory other uids may traverse (pytest's tmp_path parents are 0700)."""
    path = Path(tempfile.mkdtemp(prefix="br-deploy-acl-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_staging_dir_is_shared_with_tikv_through_acls(open_tmp_path):
    """The tmpfiles entry lets TiKV (user tidb) and the agent each read, write and delete what
    the other staged, whatever their umask, and keeps everyone else and the sealing key out."""
    if os.geteuid() != 0:
        pytest.skip("needs root (switches to the TiKV and agent uids)")
    if shutil.which("systemd-tmpfiles") is None:
        pytest.skip("systemd-tmpfiles is not installed")
    tmp_path = open_tmp_path
    # numeric ids instead of names: tmpfiles resolves names on the host, where these users don't exist
    conf = TMPFILES.read_text().replace("/var/lib/br-agent", "/stg")
    conf = re.sub(r"(user|group):tidb:", rf"\g<1>:{TIKV_UID}:", conf)
    conf = re.sub(r"(user|group):br-agent:", rf"\g<1>:{AGENT_UID}:", conf)
    conf = conf.replace(" br-agent br-agent ", f" {AGENT_UID} {AGENT_UID} ")
    assert "tidb" not in "".join(line for line in conf.splitlines() if not line.startswith("#"))
    (tmp_path / "etc" / "tmpfiles.d").mkdir(parents=True)
    (tmp_path / "etc" / "tmpfiles.d" / "br-agent.conf").write_text(conf)
    result = subprocess.run(["systemd-tmpfiles", f"--root={tmp_path}", "--create", "br-agent.conf"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "Failed" not in result.stderr, result.stderr
    staging = tmp_path / "stg" / "staging"
    if not _acl_supported(staging) or "system.posix_acl_default" not in os.listxattr(staging):
        pytest.skip("the filesystem of the test directory does not support POSIX ACLs")
    assert (os.stat(tmp_path / "stg").st_mode & 0o777) == 0o751

    script = textwrap.dedent(f"""
        import os, sys
        base = {str(staging)!r}
        def tikv_writes():
            os.makedirs(base + "/job1/7", exist_ok=True)
            open(base + "/job1/7/1_2_ab_3_default.sst", "wb").write(b"sst")
        def agent_uploads_and_cleans():
            assert open(base + "/job1/7/1_2_ab_3_default.sst", "rb").read() == b"sst"
            os.unlink(base + "/job1/7/1_2_ab_3_default.sst"); os.rmdir(base + "/job1/7"); os.rmdir(base + "/job1")
        def agent_downloads():
            os.makedirs(base + "/job2", exist_ok=True)
            open(base + "/job2/f.sst", "wb").write(b"dl")
            fd = os.open(base + "/seal.key", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.write(fd, b"k" * 32); os.close(fd)
            assert os.stat(base + "/seal.key").st_mode & 0o077 == 0
        def tikv_ingests():
            assert open(base + "/job2/f.sst", "rb").read() == b"dl"
            try:
                open(base + "/seal.key", "rb").read()
            except PermissionError:
                pass
            else:
                raise SystemExit("TiKV could read the agent's sealing key")
        def other_is_refused():
            try:
                os.listdir(base)
            except PermissionError:
                return
            raise SystemExit("another user could list the staging dir")
        steps = {{"tikv_writes": ({TIKV_UID}, tikv_writes), "agent_uploads_and_cleans": ({AGENT_UID}, agent_uploads_and_cleans),
                 "agent_downloads": ({AGENT_UID}, agent_downloads), "tikv_ingests": ({TIKV_UID}, tikv_ingests),
                 "other_is_refused": ({OTHER_UID}, other_is_refused)}}
        uid, step = steps[sys.argv[1]]
        os.setgroups([]); os.setresgid(uid, uid, uid); os.setresuid(uid, uid, uid); os.umask(0o022)
        step()
    """)
    for step in ("tikv_writes", "agent_uploads_and_cleans", "agent_downloads", "tikv_ingests", "other_is_refused"):
        run = subprocess.run([sys.executable, "-c", script, step], capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, f"{step}: {run.stdout}{run.stderr}"
    lines = [line.split() for line in TMPFILES.read_text().splitlines() if line and not line.startswith("#")]
    assert ["d", "/var/lib/br-agent/staging", "2770", "br-agent", "br-agent", "7d", "-"] in lines
    assert any(line[0] == "x" and line[1].endswith("/seal.key") for line in lines)


def _mdwe_supported() -> bool:
    probe = subprocess.run([sys.executable, "-c",
                            "import ctypes,sys; sys.exit(0 if ctypes.CDLL(None).prctl(66,0,0,0,0) >= 0 else 1)"],
                           capture_output=True, timeout=30)
    return probe.returncode == 0


MDWE_SCRIPT = r"""
import ctypes, mmap, sys, tempfile, concurrent.futures
libc = ctypes.CDLL(None, use_errno=True)
assert libc.prctl(65, 1, 0, 0, 0) == 0, "PR_SET_MDWE failed"       # PR_MDWE_REFUSE_EXEC_GAIN
try:
    mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    sys.exit("MDWE not in force: a W+X mapping was allowed")
except OSError:
    pass
# what the agent and Flower load and use, exercised
import importlib, pkgutil, br_agent, br_common
for package in (br_agent, br_common):
    for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        if not module.name.endswith("__main__"):
            importlib.import_module(module.name)
import celery, kombu, redis, boto3, grpc, rocksdict, zstandard, fastcrc, pydantic_settings, flower.app, tornado
from cryptography.hazmat.primitives.asymmetric import rsa, padding, ed25519, x25519
from cryptography.hazmat.primitives import hashes
key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
key.sign(b"task", padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.MAX_LENGTH), hashes.SHA256())
ed25519.Ed25519PrivateKey.generate().sign(b"task")
x25519.X25519PrivateKey.generate().exchange(x25519.X25519PrivateKey.generate().public_key())
d = tempfile.mkdtemp()
db = rocksdict.Rdict(d + "/db", options=rocksdict.Options(raw_mode=True)); db[b"k"] = b"v"; db.close()
writer = rocksdict.SstFileWriter(options=rocksdict.Options(raw_mode=True)); writer.open(d + "/x.sst"); writer[b"a"] = b"b"; writer.finish()
zstandard.ZstdDecompressor().decompress(zstandard.ZstdCompressor().compress(b"x" * 4096))
server = grpc.server(concurrent.futures.ThreadPoolExecutor(2)); server.add_insecure_port("127.0.0.1:0"); server.start(); server.stop(0)
boto3.client("s3", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y").generate_presigned_url(
    "get_object", Params={"Bucket": "b", "Key": "k"})
import ssl; ssl.create_default_context()
print("ok")
"""


def test_agent_libraries_run_under_memory_deny_write_execute():
    """MemoryDenyWriteExecute=yes is safe for the agent: with the kernel's equivalent switched on
    (PR_SET_MDWE, what systemd uses where available), everything the agent and Flower load works."""
    if not _mdwe_supported():
        pytest.skip("kernel without PR_SET_MDWE (Linux < 6.3)")
    result = subprocess.run([sys.executable, "-c", MDWE_SCRIPT], capture_output=True, text=True, timeout=120,
                            cwd=ROOT)
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stdout + result.stderr


# --------------------------------------------------------------------------------------------
# configuration files and their documentation
# --------------------------------------------------------------------------------------------

def test_every_agent_setting_is_documented_line_by_line():
    lines = AGENT_TOML.read_text().splitlines()
    settings = tomllib.loads(AGENT_TOML.read_text())
    keys = _toml_keys_with_lines(AGENT_TOML)
    assert [k for k, _ in keys] == list(settings), "every setting is a top-level key on its own line"
    for key, number in keys:
        assert lines[number - 1].startswith("# "), f"{key}: no comment line right above it"
        block = []
        i = number - 1
        while i >= 0 and lines[i].startswith("#"):
            block.append(lines[i])
            i -= 1
        text = " ".join(block)
        assert f"BR_AGENT_{key.upper()}" in text, f"{key}: its environment variable is not named"
        assert "Default" in text or "default" in text, f"{key}: its default is not given"


def test_agent_settings_table_in_deploy_md_matches_the_example():
    table = _deploy_md_setting_keys()
    example = [k for k, _ in _toml_keys_with_lines(AGENT_TOML)]
    assert sorted(table) == sorted(example)
    assert {"store", "pd", "broker", "staging_dir", "concurrency", "allowed_destinations",
            "ratelimit_default_mib", "log_level", "log_file", "metrics_port",
            "trusted_coordinator_keys"} <= set(table)
    text = DEPLOY_MD.read_text()
    for key in table:
        assert f"`BR_AGENT_{key.upper()}`" in text
    assert "`BR_AGENT_BROKER_PASSWORD`" in text
    # every documented default is the code's (br_agent.settings: the same text as `br-agent --help`)
    from br_agent.settings import AgentSettings, shown_default
    for key in table:
        if key not in AgentSettings.model_fields:
            continue  # implemented by another br-agent version (settings.NOT_IMPLEMENTED)
        row = re.search(rf"^\| `{key}` \|.*$", text, flags=re.M).group(0)
        documented = re.findall(r"`([^`]*)`", row.split("|")[4])[0]
        code = shown_default(key)
        assert documented == code or code.startswith(documented + " ") or code.endswith(" " + documented), \
            f"{key}: DEPLOY.md says {documented!r}, the code {code!r}"


@pytest.mark.parametrize("path", [AGENT_ENV, FLOWER_ENV])
def test_env_files_are_documented_line_by_line(path):
    lines = path.read_text().splitlines()
    assignment = re.compile(r"^#?[A-Z][A-Z0-9_]*=")
    found = 0
    for number, line in enumerate(lines):
        if re.match(r"^[A-Z][A-Z0-9_]*=", line):
            found += 1
            assert _documented_block(lines, number, assignment), f"{path.name}:{number + 1}: {line} undocumented"
    assert found >= 3


def test_no_static_credentials_anywhere_in_deploy():
    forbidden = re.compile(r"^\s*(export\s+)?(AWS_ACCESS_KEY_ID|AWS_SECRET_ACCESS_KEY|AWS_SESSION_TOKEN)\s*[=:]", re.M)
    for path in DEPLOY.rglob("*"):
        if path.is_file():
            text = path.read_text()
            assert not forbidden.search(text), path
            assert "access-key=" not in text and "secret-access-key=" not in text, path
            assert "AKIA" not in text, path
    agent_settings = tomllib.loads(AGENT_TOML.read_text())
    assert "@" not in agent_settings["broker"], "the broker URL must not carry a password"


def _code_blocks(markdown: str) -> list[str]:
    return re.findall(r"```(?:bash|sh)?\n(.*?)```", markdown, flags=re.S)


def test_deploy_md_walks_from_zero_to_first_backup_without_keys_on_command_lines():
    text = DEPLOY_MD.read_text()
    assert "## Deploy on EC2" in text
    code = "\n".join(_code_blocks(text))
    for needle in ("aws cloudformation deploy", "deploy/cloudformation/br-fleet-iam.yaml",
                   "aws ec2 associate-iam-instance-profile", "--http-tokens required",
                   "python3 -m venv /opt/br-fleet", "/opt/br-fleet/bin/pip install",
                   "apt-get install -y python3-venv redis-server", "deploy/redis/make-redis-tls.sh",
                   "systemctl enable --now br-agent", "systemctl enable --now br-flower",
                   "br fleet status", "br backup full", "--ratelimit 128", "--log-file backup.log",
                   "ssh -N -L 5555:127.0.0.1:5555", "br restore full"):
        assert needle in code, needle
    for needle in ("AccessDenied", "hop-limit", "SlowDown", "## Kubernetes"):
        assert needle in text, needle
    # no secret on any command line
    for forbidden in ("access-key", "secret-access-key", "AWS_SECRET_ACCESS_KEY", "send-credentials-to-tikv",
                      "redis-cli -a", " -a \"$", "--requirepass", "aws configure set"):
        assert forbidden not in code, forbidden
    for line in code.splitlines():
        assert not re.search(r"rediss?://:[^@$%]+@", line) or "%s" in line, line
    # every deploy/ file the guide names exists
    for ref in set(re.findall(r"deploy/[\w./-]+\w", text)):
        assert (ROOT / ref).exists(), ref


def test_deploy_md_commands_use_the_files_as_installed():
    text = DEPLOY_MD.read_text()
    code = "\n".join(_code_blocks(text))
    for installed in ("/etc/systemd/system/br-agent.service", "/etc/systemd/system/br-flower.service",
                      "/etc/sysusers.d/br-fleet.conf", "/etc/tmpfiles.d/br-agent.conf",
                      "/etc/br-fleet/agent.toml", "/etc/br-fleet/agent.env", "/etc/br-fleet/flower.env",
                      "/etc/br-fleet/broker-password", "/etc/br-fleet/tls/redis-ca.pem",
                      "/etc/br-fleet/keys/coordinator.crt"):
        assert installed in code, installed
    example = tomllib.loads(AGENT_TOML.read_text())
    assert example["broker_password_file"] == "/etc/br-fleet/broker-password"
    assert "/etc/br-fleet/tls/redis-ca.pem" in example["broker"]
    assert example["trusted_coordinator_keys"] == ["/etc/br-fleet/keys/coordinator.crt"]


def test_agent_accepts_the_documented_config(tmp_path):
    """`br-agent --config <the example> --check-config` succeeds (paths moved into tmp_path)."""
    exe = Path(sys.executable).with_name("br-agent")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "br_agent.cli"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("BR_AGENT_")}
    help_text = subprocess.run([*cmd, "--help"], capture_output=True, text=True, timeout=60, env=env).stdout
    if "--config" not in help_text:
        pytest.skip("br-agent has no --config yet (issue 5 item 2; the contract is docs/DEPLOY.md "
                    "'Agent settings')")
    assert "--check-config" in help_text, "docs/DEPLOY.md promises `br-agent --config FILE --check-config`"
    etc, var = tmp_path / "etc", tmp_path / "var"
    text = AGENT_TOML.read_text().replace("/etc/br-fleet/", f"{etc}/").replace("/var/lib/br-agent/", f"{var}/")
    text = text.replace("/var/lib/tikv/data/", f"{var}/tikv/")
    (var / "tikv" / "import").mkdir(parents=True)
    (etc / "keys").mkdir(parents=True)
    (etc / "tls").mkdir()
    (var / "staging").mkdir(parents=True)
    secret = "f00dfeedf00dfeedf00dfeedf00dfeed"
    (etc / "broker-password").write_text(secret + "\n")
    subprocess.run(["openssl", "req", "-x509", "-new", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=br-fleet coordinator", "-keyout", str(etc / "keys" / "coordinator.key"),
                    "-out", str(etc / "keys" / "coordinator.crt")], check=True, capture_output=True, timeout=60)
    shutil.copy(etc / "keys" / "coordinator.crt", etc / "tls" / "redis-ca.pem")
    config = tmp_path / "agent.toml"
    config.write_text(text)
    result = subprocess.run([*cmd, "--config", str(config), "--check-config"], capture_output=True, text=True,
                            timeout=60, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert secret not in result.stdout + result.stderr


# --------------------------------------------------------------------------------------------
# Kubernetes
# --------------------------------------------------------------------------------------------

def _k8s_docs(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def test_k8s_service_account_has_the_irsa_annotation():
    docs = {doc["kind"]: doc for doc in _k8s_docs(K8S_AGENT)}
    assert set(docs) == {"ServiceAccount", "ConfigMap"}
    account = docs["ServiceAccount"]
    assert re.fullmatch(r"arn:aws[\w-]*:iam::\d{12}:role/[\w+=,.@/-]+",
                        account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"])
    assert account["automountServiceAccountToken"] is False
    config = tomllib.loads(docs["ConfigMap"]["data"]["agent.toml"])
    assert set(config) <= set(_deploy_md_setting_keys())
    assert config["allowed_destinations"] and config["trusted_coordinator_keys"]
    assert "@" not in config["broker"]


def test_k8s_sidecar_is_non_root_read_only_and_small():
    (patch,) = _k8s_docs(K8S_PATCH)
    tikv = patch["spec"]["tikv"]
    agent_docs = {doc["kind"]: doc for doc in _k8s_docs(K8S_AGENT)}
    assert tikv["serviceAccount"] == agent_docs["ServiceAccount"]["metadata"]["name"]
    (container,) = tikv["additionalContainers"]
    security = container["securityContext"]
    assert security["runAsNonRoot"] is True and security["runAsUser"] != 0
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"] and "add" not in security["capabilities"]
    assert tikv["podSecurityContext"]["runAsNonRoot"] is True
    assert tikv["podSecurityContext"]["runAsUser"] == security["runAsUser"]  # same uid as TiKV
    requests = container["resources"]["requests"]
    assert requests["cpu"].endswith("m") and int(requests["cpu"][:-1]) <= 250
    assert requests["memory"].endswith("Mi") and int(requests["memory"][:-2]) <= 512
    assert "memory" in container["resources"]["limits"]
    assert container["command"] == ["br-agent", "--config", "/etc/br-fleet/agent.toml"]
    volumes = {v["name"] for v in tikv["additionalVolumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert set(mounts.values()) <= volumes
    staging = tomllib.loads(agent_docs["ConfigMap"]["data"]["agent.toml"])["staging_dir"]
    assert mounts[staging] == "br-staging" and mounts["/tmp"] in volumes
    assert {"name": "br-staging", "mountPath": staging} in tikv["additionalVolumeMounts"]
    env = {e["name"]: e for e in container["env"]}
    assert "POD_NAME" in env and "$(POD_NAME)" in env["BR_AGENT_STORE"]["value"]
    assert not any("KEY" in name or "SECRET" in name or "PASSWORD" in name for name in env)


# --------------------------------------------------------------------------------------------
# DEPLOY.md's commands run as written
# --------------------------------------------------------------------------------------------

def test_deploy_md_shell_blocks_parse():
    if shutil.which("bash") is None:
        pytest.skip("bash is not installed")
    for block in re.findall(r"```bash\n(.*?)```", DEPLOY_MD.read_text(), flags=re.S):
        result = subprocess.run(["bash", "-n"], input=block, capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, f"{result.stderr}\n{block}"


def test_deploy_md_secret_files_come_out_right(tmp_path):
    """Run the guide's `sudo sh -c '...'` commands that write the Redis, `br` and Flower secret
    files (sudo dropped, /etc moved under tmp_path): right content, right modes, nothing on a
    command line but file names."""
    text = DEPLOY_MD.read_text()
    etc = tmp_path / "etc"
    (etc / "br-fleet").mkdir(parents=True)
    (etc / "redis").mkdir()
    ran = set()
    for body in re.findall(r"sudo sh -c '(.*?)'", text, flags=re.S):
        target = re.search(r"> */etc/(br-fleet/(?:redis-password|flower-password|coordinator\.env|flower\.env)|"
                           r"redis/br-fleet-auth\.conf)", body)
        if target is None:
            continue
        # the secret itself never appears literally: it is read from a file inside the shell
        assert not re.search(r"[0-9a-f]{24,}", body), body
        script = body.replace("/etc/", f"{etc}/")
        result = subprocess.run(["sh", "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, f"{result.stderr}\n{body}"
        ran.add(target.group(1))
    assert ran == {"br-fleet/redis-password", "br-fleet/flower-password", "br-fleet/coordinator.env",
                   "br-fleet/flower.env", "redis/br-fleet-auth.conf"}
    password = (etc / "br-fleet" / "redis-password").read_text().strip()
    assert re.fullmatch(r"[0-9a-f]{64}", password)
    assert (etc / "redis" / "br-fleet-auth.conf").read_text() == f"requirepass {password}\n"
    for name, mode in (("redis-password", 0o600), ("flower-password", 0o600), ("flower.env", 0o600),
                       ("coordinator.env", 0o640)):
        assert (etc / "br-fleet" / name).stat().st_mode & 0o777 == mode, name
    flower = {k: v for k, v, _ in _env_assignments(etc / "br-fleet" / "flower.env")}
    assert flower["CELERY_BROKER_URL"].startswith(f"rediss://:{password}@127.0.0.1:6380/0?ssl_cert_reqs=required")
    flower_password = (etc / "br-fleet" / "flower-password").read_text().strip()
    assert flower["FLOWER_BASIC_AUTH"] == f"admin:{flower_password}"
    assert flower["FLOWER_ADDRESS"] == "127.0.0.1" and flower["FLOWER_PERSISTENT"] == "true"
    assert list(flower).count("CELERY_BROKER_URL") == 1
    # a shell can source coordinator.env (the guide does: set -a; . coordinator.env; set +a)
    sourced = subprocess.run(["bash", "-c", f'set -a; . {etc}/br-fleet/coordinator.env; set +a; printf %s "$BR_BROKER"'],
                             capture_output=True, text=True, timeout=30)
    assert sourced.stdout == (f"rediss://:{password}@127.0.0.1:6380/0?ssl_cert_reqs=required"
                              f"&ssl_ca_certs={etc}/br-fleet/tls/redis-ca.pem")


def test_deploy_md_agent_toml_edit_yields_a_valid_config(tmp_path):
    """Step 7's sed over agent.toml.example gives a TOML file with this host's values."""
    text = DEPLOY_MD.read_text()
    match = re.search(r"sudo sed -i \\\n(.*?)/etc/br-fleet/agent\.toml\n", text, flags=re.S)
    assert match, "the sed that edits agent.toml"
    config = tmp_path / "agent.toml"
    shutil.copy(AGENT_TOML, config)
    command = "sed -i \\\n" + match.group(1) + str(config) + "\n"
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "STORE_ADDR": "10.0.1.22:20160",
           "PD": "10.0.1.11:2379,10.0.1.12:2379", "COORD_IP": "10.0.0.10", "BUCKET": "bkt-x", "PREFIX": "a/b"}
    result = subprocess.run(["bash", "-c", command], env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    settings = tomllib.loads(config.read_text())
    assert settings["store"] == "10.0.1.22:20160"
    assert settings["pd"] == "10.0.1.11:2379,10.0.1.12:2379"
    assert settings["broker"].startswith("rediss://10.0.0.10:6380/0?")
    assert settings["allowed_destinations"] == ["s3://bkt-x/a/b"]
    assert set(settings) == set(tomllib.loads(AGENT_TOML.read_text()))
