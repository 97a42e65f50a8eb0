"""The bot tools' limits as one governed parameter group (``BotLimitParams``, docs/protocol.md "Bot limits").

The dead-man's switch (``bastion.core.deadman``), TWAP orders (``bastion.core.twap_orders``) and
agent keys (``bastion.core.agents``) are bounded so that no owner can make a block do unbounded
work or hold unbounded state. Those bounds are ``state.bot_limits``: set in genesis (section
``bot_limits``), changed by the governance action ``set_bot_limits``, hashed and in snapshots. The
handlers read them when they judge a message or run their end-of-block step, so a change applies
to what is sent or due after it; what already exists is left as it is (an armed switch keeps its
time, a live TWAP its guard and slice count, a grant its expiry).

``BOT_LIMIT_FIELDS`` lists every field once: its name on the wire (genesis and the action, in the
unit people read: seconds, days, a decimal fraction or a count), the parameter it sets (in the
state's unit: ms, ppm or a count), its inclusive bounds and which direction loosens it. The same
table drives genesis parsing, ``bastion scenario defaults``, the action's validation and its risk
class: a looser limit (a shorter delay or interval, a higher count, cap or lifetime, a wider
slippage) is ``risk_increasing``, a tighter one ``risk_reducing``.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Final

from bastion.core.errors import ProtocolError
from bastion.core.params import DAY_MS, BotLimitParams
from bastion.core.units import MS_PER_S, PPM, format_ppm, parse_ppm

SECONDS: Final = "seconds"    # whole seconds on the wire, ms in the state
DAYS: Final = "days"          # whole days on the wire, ms in the state
COUNT: Final = "count"        # an integer, the same in both
RATIO: Final = "ratio"        # a decimal fraction on the wire ("0.03"), ppm in the state
_SCALE: Final = {SECONDS: MS_PER_S, DAYS: DAY_MS, COUNT: 1, RATIO: 1}


@dataclass(frozen=True, slots=True)
class BotLimitField:
    """One field of ``BotLimitParams``: wire ``name``, state ``param``, its ``kind`` (unit), inclusive
    bounds in the wire unit (ppm for a ratio), and whether a higher value loosens the limit."""

    name: str
    param: str
    kind: str
    minimum: int
    maximum: int
    looser_when_higher: bool


BOT_LIMIT_FIELDS: Final = (
    # the dead-man's switch: a shorter minimum delay or more firings let an owner make it fire more
    # often; more owners or orders per block make the end-of-block step heavier
    BotLimitField("deadman_min_delay_s", "deadman_min_delay_ms", SECONDS, 1, 3_600, False),
    BotLimitField("deadman_max_triggers_per_day", "deadman_max_triggers_per_day", COUNT, 1, 1_000, True),
    BotLimitField("deadman_max_owners_per_block", "deadman_max_owners_per_block", COUNT, 1, 10_000, True),
    BotLimitField("deadman_max_orders_per_block", "deadman_max_orders_per_block", COUNT, 1, 1_000_000, True),
    # TWAP orders: shorter intervals and durations mean more slices sooner, more TWAPs and slices more
    # state and work, a wider slippage guard lets slices fill further from the oracle price
    BotLimitField("twap_interval_s", "twap_interval_ms", SECONDS, 1, 3_600, False),
    BotLimitField("twap_min_duration_s", "twap_min_duration_ms", SECONDS, 1, 7 * 86_400, False),
    BotLimitField("twap_max_duration_s", "twap_max_duration_ms", SECONDS, 1, 7 * 86_400, True),
    BotLimitField("twap_max_per_subaccount", "twap_max_per_subaccount", COUNT, 0, 100, True),
    BotLimitField("twap_max_slices_per_block", "twap_max_slices_per_block", COUNT, 1, 10_000, True),
    BotLimitField("twap_default_slippage", "twap_default_slippage_ppm", RATIO, 1, PPM, True),
    BotLimitField("twap_max_slippage", "twap_max_slippage_ppm", RATIO, 1, PPM, True),
    # agent keys: more grants or longer ones leave more keys able to trade for an owner
    BotLimitField("agent_max_per_owner", "agent_max_per_owner", COUNT, 0, 256, True),
    BotLimitField("agent_max_lifetime_days", "agent_max_lifetime_ms", DAYS, 1, 730, True),
)
BOT_LIMIT_FIELDS_BY_NAME: Final = {spec.name: spec for spec in BOT_LIMIT_FIELDS}


def _parse_value(spec: BotLimitField, value: object, field: str) -> int:
    """A wire value of ``spec`` in the state's unit (``invalid_field`` out of bounds or of the wrong type)."""
    if spec.kind == RATIO:
        number = parse_ppm(value, field=field)
        shown = f"{format_ppm(spec.minimum)} to {format_ppm(spec.maximum)}"
    else:
        if not isinstance(value, int) or isinstance(value, bool):
            raise ProtocolError("invalid_field", f"{field} must be an integer, got {value!r}", field=field)
        number, shown = value, f"{spec.minimum} to {spec.maximum}"
    if not spec.minimum <= number <= spec.maximum:
        raise ProtocolError("invalid_field", f"{field} must be {shown}", field=field)
    return number * _SCALE[spec.kind]


def parse_bot_limits(obj: object, base: BotLimitParams, path: str) -> BotLimitParams:
    """A (partial) ``bot_limits`` section (wire names, ``BOT_LIMIT_FIELDS``) merged over ``base``.
    The one validation of genesis and of ``set_bot_limits``; errors name ``path.<field>``. Raises
    ``invalid_field`` (not an object, a value out of its bounds), ``unknown_field``, the decimal codes,
    and ``invalid_bot_limits`` when the merged limits contradict each other (a TWAP interval longer
    than the minimum duration, a minimum duration above the maximum, a default slippage above the cap)."""
    if not isinstance(obj, dict):
        raise ProtocolError("invalid_field", f"{path} must be an object", field=path)
    for key in sorted(set(obj) - set(BOT_LIMIT_FIELDS_BY_NAME)):
        raise ProtocolError("unknown_field", f"{path} has no field {key!r}", field=f"{path}.{key}")
    values = {f.name: getattr(base, f.name) for f in fields(base)}
    for spec in BOT_LIMIT_FIELDS:
        if spec.name in obj:
            values[spec.param] = _parse_value(spec, obj[spec.name], f"{path}.{spec.name}")
    limits = BotLimitParams(**values)
    if not limits.twap_interval_ms <= limits.twap_min_duration_ms <= limits.twap_max_duration_ms:
        raise ProtocolError("invalid_bot_limits", "TWAP limits must satisfy twap_interval_s <= twap_min_duration_s "
                            "<= twap_max_duration_s (every TWAP has at least one slice)", field=path)
    if limits.twap_default_slippage_ppm > limits.twap_max_slippage_ppm:
        raise ProtocolError("invalid_bot_limits", "twap_default_slippage must not exceed twap_max_slippage",
                            field=path)
    return limits


def format_bot_limits(limits: BotLimitParams) -> dict[str, Any]:
    """The wire (genesis) form of ``limits``: ``bastion scenario defaults`` shows it."""
    document: dict[str, Any] = {}
    for spec in BOT_LIMIT_FIELDS:
        value: int = getattr(limits, spec.param)
        document[spec.name] = format_ppm(value) if spec.kind == RATIO else value // _SCALE[spec.kind]
    return document
