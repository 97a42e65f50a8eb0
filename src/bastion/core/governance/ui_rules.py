"""UI requirements as governed per-market parameters (issue 20): ``set_ui_requirements``.

A market's ``UiRequirements`` (``bastion.core.params``) say what any frontend reading the API must
show and enforce: a risk banner, the maintenance share above which the order preview suggests an
isolated subaccount, the default and the maximum leverage offered, and the leverage above which an
order needs the trader's confirmation. They are state (the ``ui_requirements`` leaf, absent while a
market has the defaults) and move only through this action in a proposal, one ``Change`` per field
under ``ui_requirements.<ticker>.<attr>``.

Risk classes: offering more leverage (a higher maximum or default, 0 counting as unbounded), asking
for a confirmation later (a higher threshold, 0 = never) or suggesting isolation later (a higher
threshold) increases risk; removing a banner increases risk and adding one reduces it; changing a
banner's text is neutral.

Genesis may set them too (``genesis.ui_requirements``: ``{ticker: {the action's fields}}``,
``set_genesis_ui_requirements``). ``effective_ui_requirements`` is the read every adapter uses (the
API's market view, the preview, the web page): the market's record or the defaults.
"""
from __future__ import annotations

from typing import Any, Final

from bastion.core.errors import ProtocolError
from bastion.core.enums import MarketStatus
from bastion.core.governance.changes import (
    NEUTRAL, NO_CAP, RISK_INCREASING, RISK_REDUCING, Change, ParamGroup, ParamPath, apply_change, compare_risk,
)
from bastion.core.governance.params_codec import parse_ratio
from bastion.core.messages import SetUiRequirements
from bastion.core.params import UiRequirements
from bastion.core.state import State
from bastion.core.units import PPM, PPM_DECIMALS, parse_decimal

ONE_X: Final = PPM                                # a leverage of 1x in ppm
_LEVERAGE_FIELDS: Final = (("default_leverage", "default_leverage_ppm"), ("max_leverage", "max_leverage_ppm"),
                           ("confirm_above_leverage", "confirm_above_leverage_ppm"))


_DEFAULTS: Final = UiRequirements()


def effective_ui_requirements(state: State, ticker: str) -> UiRequirements:
    """The market's governed UI requirements, or the defaults when none were ever set (do not mutate)."""
    return state.ui_requirements.get(ticker) or _DEFAULTS


def _parse_leverage(text: str, field: str) -> int:
    """A leverage multiple as ppm of 1x: "0" (no requirement) or at least 1x."""
    value = parse_decimal(text, PPM_DECIMALS, field=field)
    if value != 0 and value < ONE_X:
        raise ProtocolError("invalid_leverage", f"{field} must be 0 (no requirement) or at least 1", field=field)
    return value


def _unbounded(ppm: int) -> int:
    """0 ("no requirement") compares as an infinite leverage."""
    return NO_CAP if ppm == 0 else ppm


def compute_ui_requirements_changes(state: State, action: SetUiRequirements) -> list[Change]:
    """Validate ``set_ui_requirements`` and return one ``Change`` per field given (module docstring for
    the classes). Raises ``unknown_market``, ``market_delisted``, ``invalid_risk_banner`` (a control
    character), ``invalid_field`` (an isolation threshold outside (0, 1]), ``invalid_leverage``
    (a leverage below 1 other than 0, or a default above a set maximum) and the decimal codes."""
    market = state.markets.get(action.market)
    if market is None:
        raise ProtocolError("unknown_market", f"unknown market {action.market!r}", field="market")
    if market.status in (MarketStatus.FINAL_SETTLEMENT, MarketStatus.SETTLED):
        raise ProtocolError("market_delisted", f"{market.ticker} is delisted ({market.status})", field="market")
    old = effective_ui_requirements(state, market.ticker)

    def path(attr: str) -> ParamPath:
        return ParamPath(ParamGroup.UI_REQUIREMENTS, market.ticker, attr)
    changes: list[Change] = []
    if action.risk_banner is not None:
        banner = action.risk_banner
        if not banner.isprintable():
            raise ProtocolError("invalid_risk_banner", "risk_banner must be printable text (no control characters)",
                                field="risk_banner")
        risk = NEUTRAL if bool(banner) == bool(old.risk_banner) else (RISK_REDUCING if banner else RISK_INCREASING)
        changes.append(Change(path("risk_banner"), old.risk_banner, banner, risk))
    if action.isolation_threshold is not None:
        threshold = parse_ratio(action.isolation_threshold, "isolation_threshold")
        if threshold == 0:
            raise ProtocolError("invalid_field", "isolation_threshold must be in (0, 1]", field="isolation_threshold")
        changes.append(Change(path("isolation_threshold_ppm"), old.isolation_threshold_ppm, threshold,
                              compare_risk(old.isolation_threshold_ppm, threshold, riskier_when_higher=True)))
    new = {attr: getattr(old, attr) for _, attr in _LEVERAGE_FIELDS}
    for name, attr in _LEVERAGE_FIELDS:
        text = getattr(action, name)
        if text is None:
            continue
        new[attr] = _parse_leverage(text, name)
        changes.append(Change(path(attr), getattr(old, attr), new[attr],
                              compare_risk(_unbounded(getattr(old, attr)), _unbounded(new[attr]),
                                           riskier_when_higher=True)))
    if 0 < new["max_leverage_ppm"] < new["default_leverage_ppm"]:  # a default of 0 is the maximum offered
        raise ProtocolError("invalid_leverage", "default_leverage must be at most max_leverage",
                            field="default_leverage")
    return changes


UI_FIELDS: Final = ("risk_banner", "isolation_threshold", "default_leverage", "max_leverage", "confirm_above_leverage")


def set_genesis_ui_requirements(state: State, section: dict[str, Any]) -> None:
    """The genesis ``ui_requirements`` section, ``{ticker: {field: value}}`` with the fields of
    ``set_ui_requirements``: each market's entry validated exactly as the action (its codes) and set
    without a parameter history (genesis values are not changes)."""
    for ticker in sorted(section):
        fields = section[ticker]
        if not isinstance(fields, dict) or not set(fields) <= set(UI_FIELDS):
            raise ProtocolError("invalid_field", f"ui_requirements.{ticker} must be an object with fields from "
                                f"{UI_FIELDS}", field=ticker)
        for change in compute_ui_requirements_changes(state, SetUiRequirements(market=ticker, **fields)):
            apply_change(state, change.path, change.new)
