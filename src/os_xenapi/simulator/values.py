"""Python values the simulator keeps and puts on the wire, with the two XAPI-specific marks.

Inside the simulator every XAPI value is a plain Python value: ``str`` for strings, refs, uuids and
enums, ``int`` for 64-bit ints, ``float``, ``bool``, ``list`` for sets, ``dict`` for maps and records.
Two subclasses carry what the wire needs to know on top of that:

* :class:`DateTime` is a ``str`` holding XAPI's text form ``YYYYMMDDTHH:MM:SSZ``; XML-RPC writes it
  as ``<dateTime.iso8601>``, JSON-RPC as a plain string.
* :class:`Int32` is an ``int`` that XML-RPC writes as ``<i4>`` (XAPI does this only for
  ``event.from``'s ``valid_ref_counts``); every other int goes out as an untyped ``<value>``.
"""

from __future__ import annotations

import datetime as _dt

EPOCH_TEXT = "19700101T00:00:00Z"


class DateTime(str):
    """A XAPI datetime, kept in its wire text form ``YYYYMMDDTHH:MM:SSZ``."""

    __slots__ = ()

    @classmethod
    def from_datetime(cls, moment: _dt.datetime) -> DateTime:
        """The XAPI text of an aware or UTC-naive ``datetime``."""
        if moment.tzinfo is not None:
            moment = moment.astimezone(_dt.timezone.utc)
        return cls(moment.strftime("%Y%m%dT%H:%M:%SZ"))

    @classmethod
    def now(cls) -> DateTime:
        """The current time, to the second, as XAPI stamps it."""
        return cls.from_datetime(_dt.datetime.now(_dt.timezone.utc))

    def to_datetime(self) -> _dt.datetime:
        """Parse back into an aware UTC ``datetime``; accepts the dashed ISO form too."""
        text = self.replace("-", "")
        if text.endswith("Z"):
            text = text[:-1]
        return _dt.datetime.strptime(text[:17], "%Y%m%dT%H:%M:%S").replace(
            tzinfo=_dt.timezone.utc
        )


EPOCH = DateTime(EPOCH_TEXT)


class Int32(int):
    """An int that XML-RPC writes as ``<i4>`` rather than XAPI's usual untyped string."""

    __slots__ = ()
