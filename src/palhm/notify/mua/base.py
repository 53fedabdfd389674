"""The mail user agent contract: boot reports and notification mails go through one."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar


class Mua(ABC):
    """Sends one message (subject + plain-text body) to recipients.

    `params` is the `mua-param` object (snake_case keys). `send` raises MailError
    carrying the MUA's own error text (mailx's stderr, the SMTP reply, SNS's error).
    """

    name: ClassVar[str]

    def __init__(self, params: Mapping[str, Any]) -> None:
        self.params = params

    @abstractmethod
    def send(self, *, subject: str, body: str, recipients: Sequence[str]) -> None: ...
