"""The messages XAPI generates for every class: field getters and setters, map and set updates,
``get_record``, ``get_all*``, ``get_by_*``, and the record constructor and destructor."""

from __future__ import annotations

from typing import Any

from .dispatch import Context, Handler
from .errors import ApiError
from .schema import ClassDef, EnumMismatch, Message, TypeMismatch, parse_type
from .where import UnknownField, WhereSyntaxError, db_string, parse_where


def hidden_where_messages(cdef: ClassDef) -> dict[str, Message]:
    """``get_all_where`` / ``get_all_records_where``: served by XAPI, absent from its docs."""
    string = parse_type("string")
    out = {}
    for name, result in (
        ("get_all_where", f"{cdef.name} ref set"),
        ("get_all_records_where", f"({cdef.name} ref -> {cdef.name} record) map"),
    ):
        if name not in cdef.messages:
            out[name] = Message(
                cdef.name, name, [("expr", string)], ["string"], result, True, False, True
            )
    return out


def handler_for(cdef: ClassDef, message: Message) -> Handler | None:
    """The generic handler of an implicit message, or None when the simulator has none."""
    if not message.implicit:
        return None
    cls, name = cdef.name, message.name
    if name == "get_record":
        return lambda ctx, ref: ctx.db.get(cls, ref)
    if name == "get_by_uuid":
        return lambda ctx, uuid: ctx.db.by_uuid_ref(cls, uuid)
    if name == "get_by_name_label":
        return lambda ctx, label: [
            r for r, rec in ctx.db.all(cls).items() if rec.get("name_label") == label
        ]
    if name == "get_all":
        return lambda ctx: list(ctx.db.all(cls))
    if name == "get_all_records":
        return lambda ctx: ctx.db.all(cls)
    if name == "get_all_where":
        return lambda ctx, expr: list(records_where(ctx, cls, expr))
    if name == "get_all_records_where":
        return lambda ctx, expr: records_where(ctx, cls, expr)
    if name == "create":
        return lambda ctx, record: create_record(ctx, cls, record)
    if name == "destroy":
        return lambda ctx, ref: ctx.db.destroy(cls, ref)
    for prefix, make in _FIELD_HANDLERS:
        if name.startswith(prefix) and name[len(prefix) :] in cdef.fields:
            return make(cdef, cdef.fields[name[len(prefix) :]].name)
    return None


def _getter(cdef: ClassDef, fname: str) -> Handler:
    cls = cdef.name
    return lambda ctx, ref: ctx.db.get(cls, ref)[fname]


def _setter(cdef: ClassDef, fname: str) -> Handler:
    cls = cdef.name
    return lambda ctx, ref, value: ctx.db.set(cls, ref, fname, value)


def _map_add(cdef: ClassDef, fname: str) -> Handler:
    cls = cdef.name

    def add(ctx: Context, ref: str, key: str, value: Any) -> None:
        record = ctx.db.get(cls, ref)
        if key in record[fname]:
            raise ApiError("MAP_DUPLICATE_KEY", cls, fname, record.get("uuid", ref), key)
        record[fname][key] = value
        ctx.db.touch(ref)

    return add


def _map_remove(cdef: ClassDef, fname: str) -> Handler:
    cls = cdef.name

    def remove(ctx: Context, ref: str, key: str) -> None:
        ctx.db.get(cls, ref)[fname].pop(key, None)
        ctx.db.touch(ref)

    return remove


def _set_add(cdef: ClassDef, fname: str) -> Handler:
    cls = cdef.name

    def add(ctx: Context, ref: str, value: Any) -> None:
        members = ctx.db.get(cls, ref)[fname]
        if value not in members:
            members.append(value)
        ctx.db.touch(ref)

    return add


def _set_remove(cdef: ClassDef, fname: str) -> Handler:
    cls = cdef.name

    def remove(ctx: Context, ref: str, value: Any) -> None:
        members = ctx.db.get(cls, ref)[fname]
        if value in members:
            members.remove(value)
        ctx.db.touch(ref)

    return remove


# Longest prefixes first, so that "add_to_x" is not read as "add_" + "to_x".
_FIELD_HANDLERS = [
    ("remove_from_", _map_remove),
    ("add_to_", _map_add),
    ("remove_", _set_remove),
    ("add_", _set_add),
    ("get_", _getter),
    ("set_", _setter),
]


def records_where(ctx: Context, cls: str, expr: str) -> dict[str, dict[str, Any]]:
    """The records of ``cls`` matching a ``get_all_records_where`` expression."""
    try:
        where = parse_where(expr)
    except WhereSyntaxError as exc:
        raise ApiError(*exc.error_description) from None
    out = {}
    try:
        for ref, record in ctx.db.all(cls).items():

            def lookup(column: str, record: dict[str, Any] = record) -> str:
                # XAPI names namespaced columns with "__" (name__label); records use "_".
                key = column if column in record else column.replace("__", "_")
                return db_string(record[key])

            if where.matches(lookup):
                out[ref] = record
    except UnknownField as exc:
        raise ApiError(*exc.error_description) from None
    return out


def create_record(ctx: Context, cls: str, given: dict[str, Any]) -> str:
    """``<class>.create(record)``: the constructor fields from ``given``, defaults for the rest."""
    return ctx.db.create(cls, constructor_fields(ctx, cls, given))


def constructor_fields(ctx: Context, cls: str, given: dict[str, Any]) -> dict[str, Any]:
    """The constructor fields of ``given``, unmarshalled; raises as XAPI's generated server does."""
    cdef = ctx.db.schema[cls]
    fields: dict[str, Any] = {}
    for name in cdef.constructor:
        if name not in given:
            if name in cdef.constructor_required:
                raise ApiError(
                    "INTERNAL_ERROR", f'Server_helpers.Dispatcher_FieldNotFound("{name}")'
                )
            continue
        field = cdef.fields[name]
        try:
            fields[name] = field.type.unmarshal(given[name])
        except EnumMismatch as exc:
            raise ApiError("INVALID_VALUE", name, exc.value) from None
        except TypeMismatch:
            raise ApiError("FIELD_TYPE_ERROR", name) from None
    return fields
