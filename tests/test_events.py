"""Typed events (``bastion.core.events``): declarations, units, the one JSON serializer.

The golden scenarios are run once (module fixture) with ``apply_block`` watched, so that every
event the core really emits is checked against its declaration: declared, written back byte for
byte by ``to_json_dict(from_json_dict(...))``, every integer under a numeric unit. A synthetic
instance of every declared class checks the other direction and the types no scenario emits.
"""
from __future__ import annotations

import ast
import hashlib
import json
import re
import typing
from dataclasses import FrozenInstanceError, fields
from pathlib import Path
from typing import Any

import pytest

import bastion.presentation
import bastion.scenario
from bastion.core import events as ev
from bastion.core.events import Unit
from bastion.core.units import format_decimal, format_usdc

SRC = Path(__file__).resolve().parents[1] / "src" / "bastion"
SCENARIOS = sorted((Path(__file__).parent / "scenarios").glob("*.json"))

NUMERIC_UNITS = {Unit.USDC, Unit.BGOV, Unit.TICKS, Unit.LOTS, Unit.PPM, Unit.FUNDING_INDEX, Unit.MS, Unit.SECONDS,
                 Unit.HEIGHT, Unit.COUNT, Unit.ID, Unit.GATE, Unit.PARAM}
TEXT_UNITS = {Unit.ADDRESS, Unit.MARKET, Unit.POOL, Unit.TEXT, Unit.DECIMAL_TEXT, Unit.RATIO, Unit.HASH, Unit.ID,
              Unit.TICKS, Unit.PARAM}


@pytest.fixture(scope="module")
def golden_events() -> list[tuple[dict, dict, dict[str, tuple[int, int]]]]:
    """Every event of every golden scenario: (raw event, ``presentation.format_event`` of it, each
    market's (price_decimals, size_decimals) at that block)."""
    seen: list[tuple[dict, dict, dict[str, tuple[int, int]]]] = []
    apply_block = bastion.scenario.apply_block

    def watched(state: Any, *args: Any, **kwargs: Any) -> Any:
        result = apply_block(state, *args, **kwargs)
        grids = {t: (m.price_decimals, m.size_decimals) for t, m in state.markets.items()}
        seen.extend((event, bastion.presentation.format_event(event, state), grids) for event in result.events)
        return result

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(bastion.scenario, "apply_block", watched)
        for path in SCENARIOS:
            bastion.scenario.run_scenario(json.loads(path.read_text()))
    return seen


# --------------------------------------------------------------------------------------- declarations
def test_every_event_type_the_golden_scenarios_emit_is_declared(golden_events):
    emitted = {event["type"] for event, _, _ in golden_events}

    assert emitted - set(ev.event_types()) == set()
    assert len(emitted) >= 60  # the scenarios reach nearly every type (not deleveraging_deferred)


def test_golden_events_round_trip_byte_for_byte(golden_events):
    for event, _, _ in golden_events:
        typed = ev.from_json_dict(event)
        again = ev.to_json_dict(typed)

        assert json.dumps(again) == json.dumps(event), event["type"]
        assert ev.type_name_of(typed) == event["type"]


def test_every_integer_in_a_golden_event_has_a_numeric_unit(golden_events):
    def walk(obj: dict, units: dict[str, Unit], prefix: str, kind: str) -> None:
        for key, value in obj.items():
            path = prefix + key
            items = value if isinstance(value, list) else [value]
            for item in items:
                if isinstance(item, dict):
                    walk(item, units, path + ".", kind)
                elif isinstance(item, int) and not isinstance(item, bool):
                    assert units.get(path) in NUMERIC_UNITS, f"{kind}.{path}: {units.get(path)}"

    for event, _, _ in golden_events:
        walk({k: v for k, v in event.items() if k != "type"}, ev.units_of(event["type"]), "", event["type"])


def _sample(annotation: Any, depth: str) -> Any:
    """A value of a field's declared type (records and tuples built recursively)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        base = typing.get_args(annotation)[0]
        return {int: 7, str: f"text-{depth}", bool: True}.get(base, 3)
    if origin is tuple:
        item = typing.get_args(annotation)[0]
        return (_sample(item, depth + "0"), _sample(item, depth + "1"))
    if origin in (typing.Union, type(int | None)):
        return _sample(next(a for a in typing.get_args(annotation) if a is not type(None)), depth)
    return annotation(**{name: _sample(t, depth + name) for name, t in annotation.__annotations__.items()})


@pytest.mark.parametrize("type_name", ev.event_types())
def test_every_declared_event_round_trips(type_name):
    cls = ev.event_class(type_name)
    full = cls(**{f.name: _sample(f.type, f.name) for f in fields(cls)})
    required = {f.name: _sample(f.type, f.name) for f in fields(cls) if f.default is not None}
    sparse = cls(**required)  # optional fields unset: left out of the JSON

    for event in (full, sparse):
        data = ev.to_json_dict(event)
        assert ev.from_json_dict(data) == event
        assert list(data)[0] == "type" and data["type"] == type_name
        assert json.loads(json.dumps(data)) == data  # JSON-ready: lists, not tuples
    assert len(ev.to_json_dict(sparse)) == 1 + len(required)


@pytest.mark.parametrize("type_name", ev.event_types())
def test_every_field_declares_a_unit_fitting_its_type(type_name):
    units = ev.units_of(type_name)

    for key, unit in units.items():
        assert isinstance(unit, Unit), (type_name, key)
    for f in fields(ev.event_class(type_name)):
        annotation = f.type
        while typing.get_origin(annotation) in (typing.Union, type(int | None), tuple):
            annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
        if typing.get_origin(annotation) is not typing.Annotated:
            continue  # a record: its own fields are checked through units_of's dotted keys
        base, unit = typing.get_args(annotation)[:2]
        if base is int:
            assert unit in NUMERIC_UNITS, (type_name, f.name)
        elif base is bool:
            assert unit == Unit.FLAG, (type_name, f.name)
        elif base is str:
            assert unit in TEXT_UNITS, (type_name, f.name)


def test_units_of_names_nested_fields_with_dots():
    assert ev.units_of("fill")["maker.fee"] == Unit.USDC
    assert ev.units_of("fill")["price"] == Unit.TICKS
    assert ev.units_of("bad_debt")["shares.payment"] == Unit.USDC
    assert ev.units_of("liquidation_deferred")["markets"] == Unit.MARKET
    assert ev.units_of("proposal_status")["from"] == Unit.TEXT
    assert ev.unit_table()["funding_tick"]["index_delta"] == Unit.FUNDING_INDEX


def test_the_event_union_is_exactly_the_declared_classes():
    members = set(typing.get_args(ev.Event))

    assert members == {ev.event_class(name) for name in ev.event_types()}
    assert len(ev.event_types()) == len(set(ev.event_types())) == len(members)


def test_event_classes_are_frozen_keyword_only_dataclasses():
    transform = ev.event.__dataclass_transform__  # type: ignore[attr-defined]  # what mypy reads
    # Python 3.11 files the 3.12 keyword frozen_default under "kwargs"
    assert transform.get("frozen_default", transform.get("kwargs", {}).get("frozen_default")) is True
    assert transform["kw_only_default"] is True
    with pytest.raises(TypeError):
        ev.Deposit("0x" + "a" * 40, 0, 5)  # type: ignore[misc]  # keyword-only
    deposit = ev.Deposit(owner="0x" + "a" * 40, number=0, amount=5)
    with pytest.raises(FrozenInstanceError):
        deposit.amount = 6  # type: ignore[misc]
    with pytest.raises(TypeError, match="keyword-only"):
        ev.emit([], ev.Deposit, "0x" + "a" * 40)  # type: ignore[arg-type]


def test_records_are_typed_dicts_declared_with_units():
    party = ev.FillParty(owner="0x" + "b" * 40, number=1, order_id=None, fee=0)

    assert party == {"owner": "0x" + "b" * 40, "number": 1, "order_id": None, "fee": 0}  # its own JSON form
    with pytest.raises(TypeError, match="declares its unit"):
        @ev.record
        class Unitless(typing.TypedDict):
            fee: int


def test_emit_and_to_json_dict_give_the_same_dict():
    party = ev.FillParty(owner="0x" + "b" * 40, number=1, order_id=None, fee=0)
    fields_ = dict(market="BTC-USD", price=100, size=-3, taker_side="sell", to_insurance=2,
                   maker=ev.FillParty(owner="0x" + "a" * 40, number=0, order_id=9, fee=4), taker=party)
    events: list[dict] = []

    returned = ev.emit(events, ev.Fill, **fields_, liquidation=True)

    assert events == [returned]
    assert json.dumps(returned) == json.dumps(ev.to_json_dict(ev.Fill(**fields_, liquidation=True)))
    assert list(returned) == ["type", "market", "price", "size", "taker_side", "to_insurance", "maker", "taker",
                              "liquidation"]
    assert returned["taker"] == {"owner": "0x" + "b" * 40, "number": 1, "order_id": None, "fee": 0}
    fill = ev.Fill(**fields_)
    ev.to_json_dict(fill)["taker"]["fee"] = 99  # a reader's copy: the event keeps its records
    assert fill.taker["fee"] == 0
    plain = ev.emit(events, ev.Fill, **fields_, liquidation=None, backstop=None)  # None: left out
    assert "liquidation" not in plain and "backstop" not in plain
    renamed = ev.emit(events, ev.ProposalStatus, proposal_id="p1", from_="active_vote", to="succeeded", yes=5)
    assert renamed == {"type": "proposal_status", "proposal_id": "p1", "from": "active_vote", "to": "succeeded",
                       "yes": 5}


def _emit_calls() -> list[tuple[str, int, list[str], list[str], bool]]:
    """Every ``emit(events, ev.X, ...)`` call of the core: (file, line, event classes, keyword
    names in order, whether it spreads a ``**mapping``)."""
    calls = []
    for path in sorted((SRC / "core").rglob("*.py")) + [SRC / "risk_model.py"]:
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "emit"):
                continue
            kind = node.args[1]
            options = [kind.body, kind.orelse] if isinstance(kind, ast.IfExp) else [kind]
            classes = [option.attr for option in options if isinstance(option, ast.Attribute)]
            assert len(classes) == len(options), f"{path.name}:{node.lineno}: emit(events, ev.SomeEvent, ...)"
            names = [k.arg for k in node.keywords if k.arg is not None]
            calls.append((path.name, node.lineno, classes, names, any(k.arg is None for k in node.keywords)))
    return calls


def test_every_emitter_names_known_fields_in_declaration_order():
    calls = _emit_calls()

    assert len(calls) >= 40
    for file, line, classes, names, spreads in calls:
        for class_name in classes:
            declared = [f.name for f in fields(getattr(ev, class_name))]
            required = [f.name for f in fields(getattr(ev, class_name)) if f.default is not None]
            assert set(names) <= set(declared), f"{file}:{line}: unknown field of {class_name}"
            assert names == [n for n in declared if n in names], f"{file}:{line}: {class_name} fields out of order"
            if not spreads:
                assert set(required) <= set(names), f"{file}:{line}: {class_name} lacks a field"


# The event JSON shapes (each type's keys, in order, nested ones dotted) as of issue 15, when the
# classes replaced the inline dicts without changing a byte (checked then against the previous
# engine on every golden scenario and the benchmark's stream). The round trip above cannot see a
# reordered or renamed field (the emitter and the parser share the declaration), so the shapes are
# pinned: a change here changes the log, replay --verify and the API; make it on purpose, then
# update the digest. Issue 17 added agent_authorized, agent_revoked, agent_acted (agent keys) and
# order_modified, cancel_scheduled, scheduled_cancel, twap_placed, twap_slice and twap_finished (bot
# tools); the shapes of the older types did not change.
EVENT_SHAPES_SHA256 = "10a05a56917b360e96c62ac70f74e3268a40c0a8fcd8447adaa64040a47e2de4"


def test_the_event_shapes_are_pinned():
    shapes = {name: list(ev.units_of(name)) for name in ev.event_types()}
    digest = hashlib.sha256(json.dumps(shapes, sort_keys=True).encode()).hexdigest()

    assert digest == EVENT_SHAPES_SHA256, "the events' JSON keys changed (see the comment above)"


# --------------------------------------------------------------------------------------- undeclared
def test_an_undeclared_event_type_is_refused():
    with pytest.raises(KeyError, match="undeclared event type 'brand_new_event'"):
        ev.from_json_dict({"type": "brand_new_event", "amount": 1})
    with pytest.raises(KeyError):
        ev.units_of("brand_new_event")


def test_a_declared_type_with_an_unknown_or_missing_key_is_refused():
    data = ev.to_json_dict(ev.Deposit(owner="0x" + "a" * 40, number=0, amount=5))

    with pytest.raises(ValueError, match="unknown key 'memo'"):
        ev.from_json_dict({**data, "memo": "x"})
    with pytest.raises(ValueError, match="missing key 'amount'"):
        ev.from_json_dict({k: v for k, v in data.items() if k != "amount"})


def test_a_field_without_a_unit_or_a_type_declared_twice_fails_at_declaration():
    with pytest.raises(TypeError, match="declares its unit"):
        @ev.event("unitless_example", ev.Topic.ACCOUNT)
        class Unitless:
            amount: int

    with pytest.raises(TypeError, match="declared twice"):
        @ev.event("deposit", ev.Topic.ACCOUNT)
        class AnotherDeposit:
            amount: ev.Usdc
    assert "unitless_example" not in ev.event_types()


def test_no_core_module_builds_an_event_inline():
    """Every event is emitted from its class (``emit(events, ev.X, ...)``): no core module writes an
    inline ``{"type": "some_event", ...}`` literal, and the ``Events`` alias is declared once, in
    ``core/events.py`` (a module-local ``Events = list[dict]`` would let untyped events back in)."""
    declared = set(ev.event_types())
    inline, aliases = [], []
    for path in sorted((SRC / "core").rglob("*.py")) + [SRC / "risk_model.py"]:
        if path.name in ("messages.py", "snapshot.py", "events.py"):  # messages and actions, not events
            continue
        text = path.read_text()
        inline += [f"{path.name}: {name}" for name in re.findall(r'"type": "([a-z0-9_]+)"', text) if name in declared]
        aliases += [f"{path.name}: {line}" for line in text.splitlines() if re.match(r"Events\s*[:=]", line)]

    assert inline == []
    assert aliases == []


# --------------------------------------------------------------------------------------- readers' tables
def _format_by_units(event: dict, grids: dict[str, tuple[int, int]]) -> dict:
    """``presentation.format_event`` rebuilt from ``units_of``: what its key-name tables become."""
    units = ev.units_of(event["type"])
    grid = grids.get(event.get("market"))

    def one(value: Any, unit: Unit | None) -> Any:
        if isinstance(value, bool) or not isinstance(value, int):
            return value
        if unit == Unit.USDC:
            return format_usdc(value)
        if unit == Unit.BGOV:
            return format_decimal(value, 6)
        if grid is not None and unit == Unit.TICKS:
            return format_decimal(value, grid[0])
        if grid is not None and unit == Unit.LOTS:
            return format_decimal(value, grid[1])
        return value

    def walk(obj: dict, prefix: str) -> dict:
        out = {}
        for key, value in obj.items():
            path = prefix + key
            if isinstance(value, dict):
                out[key] = walk(value, path + ".")
            elif isinstance(value, list):
                out[key] = [walk(v, path + ".") if isinstance(v, dict) else one(v, units.get(path)) for v in value]
            else:
                out[key] = one(value, units.get(path))
        return out
    return walk(event, "")


def test_the_output_formatting_is_derived_from_the_units(golden_events):
    """``presentation.format_event`` (scenario output, API, WebSocket) formats every golden event
    exactly as its declared units say: there is no second table of key names."""
    for event, formatted, grids in golden_events:
        assert formatted == _format_by_units(event, grids), event["type"]


def test_the_governance_topic_is_the_websocket_governance_channel():
    from bastion.api.ws import GOVERNANCE_EVENT_TYPES

    assert GOVERNANCE_EVENT_TYPES == frozenset(ev.event_types(ev.Topic.GOVERNANCE))
    assert "stress_report_registered" in GOVERNANCE_EVENT_TYPES and "fill" not in GOVERNANCE_EVENT_TYPES
