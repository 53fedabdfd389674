"""Calendar durations for `keep-within` (restic's grammar): `2d`, `1w3d`, `1y6m`, `36h`.

Units: y (years), m (months), w (weeks = 7 days), d (days), h (hours), each at most
once, largest first. Years and months are calendar steps with Go's normalisation
(restic's `AddDate`): 31 March minus one month is 3 March (31 February, normalised).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Final

from palhm.records import record

_GRAMMAR: Final = re.compile(r"^(?:(\d+)y)?(?:(\d+)m)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?$")


@record
class Duration:
    years: int = 0
    months: int = 0
    days: int = 0  # weeks are folded in
    hours: int = 0

    def before(self, moment: datetime) -> datetime:
        """`moment` minus this duration (calendar years/months, then days, then hours)."""
        total = moment.year * 12 + moment.month - 1 - (self.years * 12 + self.months)
        year, month = divmod(total, 12)
        if year < 1:
            return datetime.min.replace(tzinfo=moment.tzinfo)
        first = moment.replace(year=year, month=month + 1, day=1)
        try:
            return first + timedelta(days=moment.day - 1 - self.days, hours=-self.hours)
        except OverflowError:
            return datetime.min.replace(tzinfo=moment.tzinfo)

    def after(self, moment: datetime) -> datetime:
        """`moment` plus this duration (calendar years/months with Go's normalisation,
        then days, then hours); datetime.max (in `moment`'s zone) when out of range."""
        total = moment.year * 12 + moment.month - 1 + self.years * 12 + self.months
        year, month = divmod(total, 12)
        try:
            first = moment.replace(year=year, month=month + 1, day=1)
            return first + timedelta(days=moment.day - 1 + self.days, hours=self.hours)
        except (OverflowError, ValueError):
            return datetime.max.replace(tzinfo=moment.tzinfo)

    def __str__(self) -> str:
        parts = [(self.years, "y"), (self.months, "m"), (self.days, "d"), (self.hours, "h")]
        return "".join(f"{n}{unit}" for n, unit in parts if n) or "0h"


def parse_duration(raw: object) -> Duration:
    """`"1w3d"` -> Duration(days=10). Raises ValueError saying what was expected."""
    text = raw.strip().lower() if isinstance(raw, str) else None
    match = _GRAMMAR.match(text) if text else None
    if match is None or not any(match.groups()):
        raise ValueError(
            f'expected a duration like "2d", "1w3d" or "1y6m" (units y m w d h), found {raw!r}'
        )
    years, months, weeks, days, hours = (int(g) if g else 0 for g in match.groups())
    return Duration(years, months, weeks * 7 + days, hours)
