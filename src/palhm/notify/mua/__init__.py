"""MUA registry: one line per MUA. Imported lazily (aws-sns needs boto3)."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any, Final

from palhm.notify.mua.base import Mua

MUAS: Final[dict[str, str]] = {
    "stdout": "palhm.notify.mua.stdout:StdoutMua",
    "mailx": "palhm.notify.mua.mailx:MailxMua",
    "smtp": "palhm.notify.mua.smtp:SmtpMua",
    "aws-sns": "palhm.notify.mua.sns:SnsMua",  # module "aws"
}


def create_mua(name: str, params: Mapping[str, Any]) -> Mua:
    module_name, _, class_name = MUAS[name].partition(":")
    cls: type[Mua] = getattr(importlib.import_module(module_name), class_name)
    return cls(params)
