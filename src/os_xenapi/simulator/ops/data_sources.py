"""``get_data_sources``, ``query_data_source``, ``record_data_source`` and
``forget_data_source_archives`` of VM, host and SR, answered by the pool's rrdd (:mod:`..rrd`).

SRs have no RRD here (rrdd keeps one only for SRs whose driver reports statistics): their list
is empty, as ``query_possible_sr_dss`` answers for an unknown SR, and the other three fail as
rrdd's ``Hashtbl.find`` does.
"""

from __future__ import annotations

from typing import Any

from ..dispatch import Context, api
from ..rrd import no_rrd, rrds_of


def _register(cls: str) -> None:
    @api(cls, "get_data_sources")
    def get_data_sources(ctx: Context, ref: str) -> list[dict[str, Any]]:
        return rrds_of(ctx.xapi).get_data_sources(cls, ref)

    @api(cls, "query_data_source")
    def query_data_source(ctx: Context, ref: str, data_source: str) -> float:
        return rrds_of(ctx.xapi).query_data_source(cls, ref, data_source)

    @api(cls, "record_data_source")
    def record_data_source(ctx: Context, ref: str, data_source: str) -> None:
        rrds_of(ctx.xapi).record_data_source(cls, ref, data_source)

    @api(cls, "forget_data_source_archives")
    def forget_data_source_archives(ctx: Context, ref: str, data_source: str) -> None:
        rrds_of(ctx.xapi).forget_data_source_archives(cls, ref, data_source)


_register("VM")
_register("host")


@api("SR", "get_data_sources")
def sr_get_data_sources(ctx: Context, sr: str) -> list[dict[str, Any]]:
    ctx.db.get("SR", sr)
    return []


def _sr_without_rrd(ctx: Context, sr: str, data_source: str) -> None:
    ctx.db.get("SR", sr)
    raise no_rrd()


api("SR", "query_data_source")(_sr_without_rrd)
api("SR", "record_data_source")(_sr_without_rrd)
api("SR", "forget_data_source_archives")(_sr_without_rrd)
