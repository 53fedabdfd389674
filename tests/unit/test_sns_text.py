"""SNS limits applied by the aws-sns MUA to subjects, messages and recipients (pure)."""

from __future__ import annotations

import re

import pytest

from palhm.errors import MailError
from palhm.notify.mua.sns import MAX_MESSAGE, arn_region, sns_message, sns_subject, target_args

TOPIC = "arn:aws:sns:eu-west-1:123456789012:boot-reports"


def test_short_ascii_subject_is_kept() -> None:
    assert sns_subject("Boot Report from db1") == "Boot Report from db1"


def test_subject_loses_line_breaks_and_control_characters() -> None:
    assert sns_subject("Boot\nReport\t from\r\n db1\x07") == "Boot Report from db1"


def test_subject_becomes_ascii() -> None:
    assert sns_subject("Rapport de démarrage – hôte") == "Rapport de demarrage ? hote"


def test_long_subject_is_cut_to_100_characters_with_an_ellipsis() -> None:
    subject = sns_subject("x" * 150)
    assert len(subject) == 100
    assert subject.endswith("...")


def test_empty_subject_gets_a_default() -> None:
    assert sns_subject(" \n ") == "palhm"


def test_message_within_limit_is_untouched() -> None:
    body = "é" * (MAX_MESSAGE // 2)
    assert sns_message(body) == body


@pytest.mark.parametrize("filler", ["a", "é", "€", "😀"])
def test_long_message_is_cut_on_a_character_boundary_with_a_note(filler: str) -> None:
    body = filler * (MAX_MESSAGE // len(filler.encode()) + 5000)
    message = sns_message(body)
    encoded = message.encode()
    assert len(encoded) <= MAX_MESSAGE
    match = re.search(r"\[truncated by palhm: (\d+) bytes omitted\]\n$", message)
    assert match is not None
    kept = message[: match.start()].rstrip("\n")
    assert body.startswith(kept)
    assert int(match.group(1)) == len(body.encode()) - len(kept.encode())


def test_topic_arn_is_published_as_topic() -> None:
    assert target_args(TOPIC, "m") == {"TopicArn": TOPIC}


def test_endpoint_arn_is_published_as_target() -> None:
    arn = "arn:aws:sns:us-east-1:123456789012:endpoint/GCM/app/0123"
    assert target_args(arn, "m") == {"TargetArn": arn}


def test_fifo_topic_gets_group_and_deduplication_ids() -> None:
    args = target_args(TOPIC + ".fifo", "m")
    assert args["MessageGroupId"] == "palhm"
    assert len(args["MessageDeduplicationId"]) == 64


def test_phone_number_is_published_as_sms() -> None:
    assert target_args("+15555550100", "m") == {"PhoneNumber": "+15555550100"}


def test_address_that_is_not_an_arn_is_refused() -> None:
    with pytest.raises(MailError, match="root@example.org' is not an SNS ARN"):
        target_args("root@example.org", "m")


def test_region_comes_from_the_arn() -> None:
    assert arn_region(TOPIC) == "eu-west-1"
    assert arn_region("+15555550100") is None
