"""The `aws-sns` MUA (module `aws`): publishes a message to SNS topics or endpoints.

Recipients (`mail-to`) are ARNs: a topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME) is
published to as TopicArn, any other ARN (a mobile endpoint) as TargetArn, and a
number starting with '+' as an SMS PhoneNumber. `mua-param`: `profile`, `region`
and `endpoint_url`; without `region`, each ARN's own region is used, then boto3's
default.

SNS limits, applied here so that a long report still arrives (each with a warning):
the subject is at most 100 printable ASCII characters on one line (non-ASCII letters
lose their accents, other characters become '?', line breaks become spaces, a longer
subject ends in "..."); the message is at most 256 KiB of UTF-8, cut on a character
boundary and ended by a "[truncated by palhm: N bytes omitted]" line.
"""

from __future__ import annotations

import hashlib
import logging
import re
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any, Final

from palhm import aws
from palhm.errors import MailError
from palhm.notify.mua.base import Mua

log = logging.getLogger(__name__)

MAX_SUBJECT: Final = 100  # characters
MAX_MESSAGE: Final = 256 * 1024  # bytes of UTF-8
DEFAULT_SUBJECT: Final = "palhm"
_SPACES: Final = re.compile(r"\s+")


class SnsMua(Mua):
    """Publishes subject + body to every recipient; a failure for one recipient does
    not stop the others, then MailError lists every failure with SNS's error text."""

    name = "aws-sns"

    def __init__(self, params: Mapping[str, Any]) -> None:
        super().__init__(params)
        self._spec = aws.ClientSpec.from_params(params)
        self._clients: dict[str | None, Any] = {}

    def send(self, *, subject: str, body: str, recipients: Sequence[str]) -> None:
        if not recipients:
            raise MailError("aws-sns: no recipient (mail-to) to publish to")
        message = sns_message(body)
        request = {"Subject": sns_subject(subject), "Message": message}
        failures = []
        for recipient in recipients:
            try:
                self._publish(recipient, request)
            except MailError as exc:
                failures.append(str(exc))
        if failures:
            raise MailError("\n".join(failures))

    def _publish(self, recipient: str, request: Mapping[str, str]) -> None:
        client = self._client(arn_region(recipient))
        args = {**request, **target_args(recipient, request["Message"])}
        with aws.translate_errors(MailError, f"aws-sns: publishing to {recipient} failed"):
            response = client.publish(**args)
        log.info("aws-sns: published to %s (message id %s)", recipient, response.get("MessageId"))

    def _client(self, arn_region: str | None) -> Any:
        region = self._spec.region or arn_region
        if region not in self._clients:
            spec = aws.ClientSpec(self._spec.profile, region, self._spec.endpoint_url)
            self._clients[region] = aws.make_client("sns", spec, error=MailError, where="aws-sns")
        return self._clients[region]


def target_args(recipient: str, message: str) -> dict[str, str]:
    """How Publish names the recipient (TopicArn, TargetArn or PhoneNumber)."""
    if recipient.startswith("+"):
        return {"PhoneNumber": recipient}
    if not recipient.startswith("arn:"):
        raise MailError(f"aws-sns: '{recipient}' is not an SNS ARN (arn:aws:sns:REGION:...)")
    resource = recipient.split(":", 5)[-1]
    if "/" in resource:  # endpoint/PLATFORM/APP/ID
        return {"TargetArn": recipient}
    args = {"TopicArn": recipient}
    if resource.endswith(".fifo"):  # FIFO topics need a group; dedupe on the content
        args["MessageGroupId"] = "palhm"
        args["MessageDeduplicationId"] = hashlib.sha256(message.encode()).hexdigest()
    return args


def arn_region(recipient: str) -> str | None:
    """REGION of arn:PARTITION:sns:REGION:ACCOUNT:..., None for anything else."""
    fields = recipient.split(":")
    return fields[3] or None if len(fields) >= 6 and fields[0] == "arn" else None


def sns_subject(subject: str) -> str:
    """`subject` made acceptable to SNS: one line of printable ASCII, <= 100 characters."""
    decomposed = unicodedata.normalize("NFKD", subject)
    ascii_text = "".join(
        c if c.isascii() else "?" for c in decomposed if not unicodedata.combining(c)
    )
    printable = "".join(c if c.isprintable() else " " for c in ascii_text)
    cleaned = _SPACES.sub(" ", printable).strip() or DEFAULT_SUBJECT
    if cleaned != _SPACES.sub(" ", subject).strip():
        log.warning("aws-sns: subject changed to printable ASCII for SNS: %r", cleaned)
    if len(cleaned) > MAX_SUBJECT:
        cleaned = cleaned[: MAX_SUBJECT - 3].rstrip() + "..."
        log.warning("aws-sns: subject cut to SNS's %d characters: %r", MAX_SUBJECT, cleaned)
    return cleaned


def sns_message(body: str) -> str:
    """`body` within SNS's 256 KiB: cut on a UTF-8 character boundary with a note
    saying how many bytes were left out."""
    encoded = body.encode()
    if len(encoded) <= MAX_MESSAGE:
        return body
    omitted = len(encoded) - MAX_MESSAGE
    while True:  # the note's length depends on the number it states
        note = f"\n[truncated by palhm: {omitted} bytes omitted]\n".encode()
        kept = encoded[: MAX_MESSAGE - len(note)].decode(errors="ignore").encode()
        if len(encoded) - len(kept) == omitted:
            break
        omitted = len(encoded) - len(kept)
    log.warning("aws-sns: message cut to SNS's %d bytes (%d bytes omitted)", MAX_MESSAGE, omitted)
    return (kept + note).decode()
