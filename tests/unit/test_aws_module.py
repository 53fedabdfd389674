"""The `aws` module's plumbing: boto3 loaded lazily, clear errors without it or on
AWS failures (no server needed)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from palhm import aws
from palhm.backends.s3.backend import S3Backend
from palhm.errors import BackendError, MailError
from palhm.notify.mua.sns import SnsMua


def test_importing_the_aws_plugins_does_not_load_boto3() -> None:
    code = (
        "import sys, palhm.aws, palhm.backends.s3.backend, palhm.notify.mua.sns\n"
        "palhm.backends.s3.backend.S3Backend({'bucket': 'b', 'root': 'r'}, task_id='t')\n"
        "print(sorted(m for m in ('boto3', 'botocore') if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_backend_without_boto3_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "boto3", None)  # makes `import boto3` fail
    backend = S3Backend({"bucket": "b", "root": "r"}, task_id="t")
    with pytest.raises(
        BackendError,
        match=r"^module 'aws' needs boto3, which palhm's Python cannot import: apt-get install"
        r" python3-boto3 .*pipx inject palhm boto3",
    ):
        backend.list_copies()


def test_sns_without_boto3_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "boto3", None)
    with pytest.raises(MailError, match=r"needs boto3, which palhm's Python cannot import"):
        SnsMua({}).send(subject="s", body="b", recipients=["arn:aws:sns:us-east-1:1:t"])


def test_unknown_profile_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials")
    backend = S3Backend({"bucket": "b", "root": "r", "profile": "nightly"}, task_id="t")
    expected = (
        "s3://b/r: creating the s3 client failed: The config profile (nightly) could not be found"
    )
    with pytest.raises(BackendError) as caught:
        backend.list_copies()
    assert str(caught.value) == expected


def test_client_error_is_described_by_code_and_message() -> None:
    from botocore.exceptions import ClientError

    error = ClientError(
        {"Error": {"Code": "AccessDenied", "Message": "Access Denied"}}, "PutObject"
    )
    assert aws.describe_error(error) == "AccessDenied: Access Denied"
    assert aws.error_code(error) == "AccessDenied"
    bare = ClientError(
        {"Error": {"Code": "404"}, "ResponseMetadata": {"HTTPStatusCode": 404}}, "HeadObject"
    )
    assert aws.describe_error(bare) == "404: HTTP status 404"


def test_translate_errors_keeps_other_exceptions() -> None:
    with pytest.raises(ZeroDivisionError), aws.translate_errors(BackendError, "x"):
        _ = 1 / 0
