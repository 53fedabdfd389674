"""`palhm boot-report` through the aws-sns MUA into a real moto server, as a user runs
it: environment credentials, the topic's subscribers receive the YAML report."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import yaml

from tests.helpers import run_palhm, write_config
from tests.services.moto import MotoServer, subscribe_topic

pytestmark = pytest.mark.services


def report_config(topic_arn: str, endpoint_url: str) -> dict[str, object]:
    return {
        "modules": ["aws"],
        "boot-report": {
            "mua": "aws-sns",
            "mua-param": {"endpoint-url": endpoint_url, "region": "us-east-1"},
            "mail-to": [topic_arn],
            "uptime-since": False,
            "uptime": False,
        },
    }


def test_boot_report_is_published_to_the_topic(tmp_path: Path, moto_server: MotoServer) -> None:
    topic = subscribe_topic(moto_server)
    config = write_config(
        tmp_path / "palhm.conf", report_config(topic.topic_arn, moto_server.endpoint_url)
    )
    result = run_palhm(["-f", str(config), "boot-report"], env=moto_server.env)
    assert result.returncode == 0, result.stderr
    (envelope,) = topic.received()
    assert envelope["Subject"] == f"Boot Report from {socket.gethostname()}"
    report = yaml.safe_load(envelope["Message"])["boot-report"]
    assert report["hostname"] == socket.gethostname()
    assert report["boot-id"] == Path("/proc/sys/kernel/random/boot_id").read_text().strip()


def test_missing_topic_fails_with_sns_error_text(tmp_path: Path, moto_server: MotoServer) -> None:
    missing = "arn:aws:sns:us-east-1:123456789012:palhm-no-such-topic"
    config = write_config(tmp_path / "palhm.conf", report_config(missing, moto_server.endpoint_url))
    result = run_palhm(["-f", str(config), "boot-report"], env=moto_server.env)
    assert result.returncode == 1
    assert f"publishing to {missing} failed: NotFound" in result.stderr
    assert "Traceback" not in result.stderr
