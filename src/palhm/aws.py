"""Shared boto3 plumbing of the `aws` module: the aws-s3 backend and the aws-sns MUA.

boto3 is imported here lazily, on the first client, so palhm without an aws config
never loads it; a missing boto3 is reported as a one-line palhm error.

Credentials follow boto3's standard chain (environment, `~/.aws/credentials`,
`~/.aws/config`, container or instance role); a `profile` parameter picks a named
profile instead, and only that profile is consulted. `endpoint_url` targets
S3-compatible stores (MinIO, Ceph RGW, Backblaze B2, Wasabi); `AWS_ENDPOINT_URL` /
`AWS_ENDPOINT_URL_S3` in the environment work as well, as botocore reads them itself,
and so does `AWS_CA_BUNDLE` (a private CA or a self-signed certificate).
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Final
from urllib.parse import urlsplit

from palhm.errors import PalhmError
from palhm.records import record

BOTO3_MISSING: Final = (
    "module 'aws' needs boto3, which palhm's Python cannot import: apt-get install"
    " python3-boto3 (Debian package), pipx inject palhm boto3 (pipx), or pip install"
    " boto3 into palhm's virtual environment"
)

# What a store that does not take botocore's aws-chunked bodies (flexible checksums
# sent as trailers over HTTPS) answers, e.g. Ceph RGW 16: 411 MissingContentLength.
CHUNKED_REFUSALS: Final = frozenset({"MissingContentLength", "411"})
CHUNKED_HINT: Final = (
    "the store does not accept checksums sent as aws-chunked trailers: set the aws-s3"
    " backend-param request-checksums to md5, or AWS_REQUEST_CHECKSUM_CALCULATION=when_required"
)

# Connect fast to fail fast on a dead endpoint; reads may wait on a slow store.
CONNECT_TIMEOUT: Final = 10.0
READ_TIMEOUT: Final = 120.0


@record
class ClientSpec:
    """Where and as whom a client talks: the common `profile`, `region`, `endpoint_url`."""

    profile: str | None = None
    region: str | None = None
    endpoint_url: str | None = None

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> ClientSpec:
        return cls(
            profile=params.get("profile") or None,
            region=params.get("region") or None,
            endpoint_url=params.get("endpoint_url") or None,
        )


def load_boto3(error: type[PalhmError]) -> Any:
    """The boto3 module, or `error` with an install hint when it is missing."""
    try:
        return importlib.import_module("boto3")
    except ImportError:
        raise error(BOTO3_MISSING) from None


def make_client(
    service: str,
    spec: ClientSpec,
    *,
    error: type[PalhmError],
    where: str,
    max_pool_connections: int = 10,
    adjust: Callable[[Any], Mapping[str, Any]] | None = None,
) -> Any:
    """A boto3 client for `service` with standard-mode retries.

    `adjust(client)` may return botocore Config settings to apply on top, decided
    from the client first made (its endpoint, the checksum settings it inherited
    from the environment or the profile); the client is then made again with them.

    Raises `error` (BackendError, MailError) "WHERE: ..." when the profile does not
    exist, it or the standard chain has no credentials, or no region can be found,
    and without WHERE when boto3 is missing.
    """
    boto3 = load_boto3(error)
    from botocore.config import Config

    quiet_library_logs()

    config = Config(
        retries={"mode": "standard"},
        connect_timeout=CONNECT_TIMEOUT,
        read_timeout=READ_TIMEOUT,
        max_pool_connections=max_pool_connections,
    )
    with translate_errors(error, f"{where}: creating the {service} client failed"):
        session = boto3.session.Session(profile_name=spec.profile)
        if session.get_credentials() is None:
            raise error(f"{where}: {no_credentials(spec.profile)}")
        client = session.client(
            service, region_name=spec.region, endpoint_url=spec.endpoint_url, config=config
        )
        extra = adjust(client) if adjust else None
        if extra:
            client = session.client(
                service,
                region_name=spec.region,
                endpoint_url=spec.endpoint_url,
                config=config.merge(Config(**extra)),
            )
        return client


def no_credentials(profile: str | None) -> str:
    """What was searched for credentials, for the error message."""
    if profile:
        return (
            f"no AWS credentials in profile '{profile}' (~/.aws/credentials and ~/.aws/config,"
            " or AWS_SHARED_CREDENTIALS_FILE / AWS_CONFIG_FILE; the environment is not"
            " consulted when 'profile' is set)"
        )
    return (
        "no AWS credentials found (tried the environment, ~/.aws/credentials,"
        " ~/.aws/config and the instance role; or set 'profile')"
    )


def is_aws_endpoint(url: str | None) -> bool:
    """Whether an endpoint URL is AWS's own (S3 proper), not an S3-compatible store."""
    if not url:
        return True
    host = (urlsplit(url).hostname or "").lower()
    return host.endswith((".amazonaws.com", ".amazonaws.com.cn")) or host == "amazonaws.com"


def quiet_library_logs() -> None:
    """Keep boto3's INFO chatter ("Found credentials in environment variables") and its
    DEBUG wire dumps out of palhm's output (cron mails); warnings still show. Loggers
    someone configured explicitly are left alone."""
    levels = {"boto3": logging.WARNING, "botocore": logging.WARNING,
              "urllib3": logging.WARNING,
              # only "connection pool is full" (harmless) and retries botocore reports
              "urllib3.connectionpool": logging.ERROR}  # fmt: skip
    for name, level in levels.items():
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET:
            logger.setLevel(level)


def is_aws_error(exc: BaseException) -> bool:
    """Whether `exc` comes from boto3/botocore or the HTTP layer below it."""
    try:
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError:
        return False
    return isinstance(exc, BotoCoreError | ClientError | OSError)


def error_code(exc: BaseException) -> str | None:
    """The service's error code ("NoSuchKey", "404") of a ClientError, else None."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return None
    code = response.get("Error", {}).get("Code")
    return str(code) if code else None


def describe_error(exc: BaseException) -> str:
    """One line for an AWS failure: 'NoSuchBucket: The specified bucket does not exist'."""
    code = error_code(exc)
    if code is not None:
        message = getattr(exc, "response", {}).get("Error", {}).get("Message") or ""
        if not message:
            status = getattr(exc, "response", {}).get("ResponseMetadata", {}).get("HTTPStatusCode")
            message = f"HTTP status {status}" if status else type(exc).__name__
        if code in CHUNKED_REFUSALS:
            message += f" ({CHUNKED_HINT})"
        return f"{code}: {message}"
    name = type(exc).__name__
    if name in ("EndpointConnectionError", "ConnectTimeoutError"):
        url = urlsplit(str(getattr(exc, "kwargs", {}).get("endpoint_url", "")))
        endpoint = f"{url.scheme}://{url.netloc}" if url.netloc else "?"
        return f"cannot connect to the endpoint {endpoint} (is it up and reachable?)"
    if name == "NoCredentialsError":
        return no_credentials(None)
    if name == "NoRegionError":
        return "no AWS region configured (set 'region', AWS_DEFAULT_REGION or a profile region)"
    text = " ".join(str(exc).split())
    return text if text else name


@contextmanager
def translate_errors(error: type[PalhmError], where: str) -> Iterator[None]:
    """Turn boto3/botocore failures inside the block into `error` ("WHERE: ...")."""
    try:
        yield
    except PalhmError:
        raise
    except Exception as exc:
        if not is_aws_error(exc):
            raise
        raise error(f"{where}: {describe_error(exc)}") from exc
