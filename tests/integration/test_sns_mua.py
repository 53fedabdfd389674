"""The aws-sns MUA against a real moto server: published messages are received from
an SQS queue subscribed to the topic (SNS's own JSON envelope carries the subject)."""

from __future__ import annotations

import re

import pytest

from palhm.errors import MailError
from palhm.notify.mua import create_mua
from palhm.notify.mua.sns import MAX_MESSAGE
from tests.services.moto import MotoServer, SnsTopic, subscribe_topic

pytestmark = pytest.mark.services


@pytest.fixture
def params(moto_server: MotoServer) -> dict[str, str]:
    return {"endpoint_url": moto_server.endpoint_url, "region": "us-east-1"}


def test_boot_report_reaches_the_topic_subscribers(
    sns_topic: SnsTopic, params: dict[str, str]
) -> None:
    body = "boot-report:\n  hostname: db1\n  boot-id: 0f3c\n"
    create_mua("aws-sns", params).send(
        subject="Boot Report from db1", body=body, recipients=[sns_topic.topic_arn]
    )
    (envelope,) = sns_topic.received()
    assert envelope["TopicArn"] == sns_topic.topic_arn
    assert envelope["Subject"] == "Boot Report from db1"
    assert envelope["Message"] == body


def test_region_is_taken_from_the_topic_arn_when_not_configured(
    sns_topic: SnsTopic, moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    create_mua("aws-sns", {"endpoint_url": moto_server.endpoint_url}).send(
        subject="s", body="b", recipients=[sns_topic.topic_arn]
    )
    assert [e["Message"] for e in sns_topic.received()] == ["b"]


def test_every_topic_gets_the_message(
    sns_topic: SnsTopic, moto_server: MotoServer, params: dict[str, str]
) -> None:
    other = subscribe_topic(moto_server)
    create_mua("aws-sns", params).send(
        subject="s", body="both", recipients=[sns_topic.topic_arn, other.topic_arn]
    )
    assert [e["Message"] for e in sns_topic.received()] == ["both"]
    assert [e["Message"] for e in other.received()] == ["both"]


def test_overlong_subject_and_body_are_cut_to_sns_limits(
    sns_topic: SnsTopic, params: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    subject = "Boot report\nfrom a host with a very long name " + "x" * 120
    body = "é" * (MAX_MESSAGE // 2 + 1000)  # 2 bytes each: 2,000 bytes too many
    create_mua("aws-sns", params).send(subject=subject, body=body, recipients=[sns_topic.topic_arn])
    (envelope,) = sns_topic.received()
    assert len(envelope["Subject"]) == 100
    assert envelope["Subject"].startswith("Boot report from a host")
    assert envelope["Subject"].endswith("...")
    message: str = envelope["Message"]
    assert len(message.encode()) <= MAX_MESSAGE
    match = re.search(r"\n\[truncated by palhm: (\d+) bytes omitted\]\n$", message)
    assert match is not None
    kept = message[: match.start()]
    assert body.startswith(kept)
    assert int(match.group(1)) == len(body.encode()) - len(kept.encode())
    assert "subject cut to SNS's 100 characters" in caplog.text
    assert "message cut to SNS's 262144 bytes" in caplog.text


def test_missing_topic_is_a_mail_error_with_sns_error_text(
    moto_env: dict[str, str], params: dict[str, str]
) -> None:
    missing = "arn:aws:sns:us-east-1:123456789012:palhm-no-such-topic"
    with pytest.raises(MailError) as caught:
        create_mua("aws-sns", params).send(subject="s", body="b", recipients=[missing])
    assert str(caught.value).startswith(f"aws-sns: publishing to {missing} failed: NotFound:")


def test_one_bad_recipient_does_not_stop_the_others(
    sns_topic: SnsTopic, params: dict[str, str]
) -> None:
    missing = "arn:aws:sns:us-east-1:123456789012:palhm-no-such-topic"
    with pytest.raises(MailError) as caught:
        create_mua("aws-sns", params).send(
            subject="s", body="still sent", recipients=[missing, sns_topic.topic_arn]
        )
    assert missing in str(caught.value)
    assert sns_topic.topic_arn not in str(caught.value)
    assert [e["Message"] for e in sns_topic.received()] == ["still sent"]


def test_unreachable_endpoint_is_a_mail_error(moto_env: dict[str, str]) -> None:
    from tests.services.moto import free_port

    endpoint = f"http://127.0.0.1:{free_port()}"
    mua = create_mua("aws-sns", {"endpoint_url": endpoint, "region": "us-east-1"})
    with pytest.raises(MailError, match=re.escape(f"cannot connect to the endpoint {endpoint}")):
        mua.send(subject="s", body="b", recipients=["arn:aws:sns:us-east-1:123456789012:t"])
