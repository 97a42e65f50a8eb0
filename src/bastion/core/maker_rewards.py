"""Volatility-weighted maker rewards (DESIGN.md section 12, docs/protocol.md "Maker rewards").

A governed share of the trading fees fills a reward pool (``fund_pool``, called where a fill's
fees are split). Every ``sample_interval_blocks`` blocks, ``run_maker_rewards`` (an end-of-block
step) samples each active market's book:

* the band is the prices within ``band_ppm`` of the oracle price (``risk_model.maker_band_ticks``);
* each maker's (subaccount's) bid and ask lots in the band come from the book's per-maker level
  totals (``Book.maker_depth``), counting only orders placed before the rest cutoff: the block
  time of the block ``min_rest_blocks - 1`` blocks before the sample, recorded when that block
  ends (so an order counts only when it has rested ``min_rest_blocks`` whole blocks; an order
  placed in a block with the same time as that block is conservatively left out);
* the sample's weight grows with the oracle's move since the market's previous sample
  (``risk_model.maker_volatility_weight_ppm``), and a maker quoting both sides adds
  ``risk_model.maker_sample_score`` (two-sided depth in micro-USDC x weight) to its weighted depth
  and one to its two-sided samples.

When ``epoch_blocks`` blocks have passed since the epoch started, the epoch closes: each maker's
score is the sum over markets of ``risk_model.maker_epoch_score`` (weighted depth x share of the
market's samples quoted two-sided), the pool is paid pro rata by score with a cap per maker
(``risk_model.maker_reward``) into each maker's subaccount balance, and what is not paid stays in
the pool for the next epoch.

Anti-gaming follows from where the score comes from: resting depth, never volume. A wash trade,
a self-trade (prevented by the matcher anyway) or an order filled or cancelled before it rested
``min_rest_blocks`` blocks adds nothing; the book never holds crossed quotes, an owner's own ones
included, so no quote that crosses its owner's orders can rest to be counted.

Cost: a sample is O(the levels in the band and their makers + the orders placed since the rest
cutoff) per market, never a scan of every order; blocks between samples do one modulo test.
"""
from __future__ import annotations

from typing import Any, Final

from bastion.core import events as ev
from bastion.core.errors import ProtocolError
from bastion.core.events import Events, emit
from bastion.core.params import MakerRewardParams
from bastion.core.state import ACTIVE, MakerRewards, State
from bastion.core.units import format_ppm, parse_ppm, ppm_of_down
from bastion.risk_model import (
    maker_band_ticks, maker_epoch_score, maker_reward, maker_sample_score, maker_volatility_weight_ppm,
)

PPM: Final = 1_000_000
MAX_EPOCH_BLOCKS: Final = 10_000_000
MAX_SLOPE_PPM: Final = 1_000 * PPM          # x1000
MAX_WEIGHT_PPM: Final = 100 * PPM           # x100

# genesis / action field -> (attribute, kind): "count" an integer, "ratio" a decimal in [0, 1], "factor" >= 0
_FIELDS: Final = {
    "epoch_blocks": ("epoch_blocks", "count"),
    "sample_interval_blocks": ("sample_interval_blocks", "count"),
    "band": ("band_ppm", "ratio"),
    "min_rest_blocks": ("min_rest_blocks", "count"),
    "pool_share": ("pool_share_ppm", "ratio"),
    "max_share_per_maker": ("max_share_per_maker_ppm", "ratio"),
    "volatility_slope": ("volatility_slope_ppm", "factor"),
    "max_volatility_weight": ("max_volatility_weight_ppm", "factor"),
}
FIELD_NAMES: Final = tuple(_FIELDS)


# --------------------------------------------------------------------------------------- parameters
def parse_maker_reward_params(obj: object, base: MakerRewardParams, path: str) -> MakerRewardParams:
    """A (partial) genesis ``maker_rewards`` section merged over ``base`` (the names of
    ``FIELD_NAMES``: block counts as integers, the rest as decimal strings). The same parser
    validates genesis and ``set_maker_reward_params``. Raises ``invalid_field`` or
    ``unknown_field`` (naming the field path) or a decimal code, and
    ``invalid_maker_reward_params`` when the fields disagree: ``epoch_blocks`` 0 (off) or at least
    ``sample_interval_blocks`` (>= 1), ``min_rest_blocks`` at most the sampling interval, a band in
    (0, 1), a cap above 0, a maximum weight of at least 1."""
    if not isinstance(obj, dict):
        raise ProtocolError("invalid_field", f"{path} must be an object", field=path)
    for key in sorted(set(obj) - set(_FIELDS)):
        raise ProtocolError("unknown_field", f"{path} has no field {key!r}", field=f"{path}.{key}")
    values = {attr: getattr(base, attr) for attr, _ in _FIELDS.values()}
    for name, (attr, kind) in _FIELDS.items():
        if name not in obj:
            continue
        value, field = obj[name], f"{path}.{name}"
        if kind == "count":
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_EPOCH_BLOCKS:
                raise ProtocolError("invalid_field", f"{field} must be an integer in 0..{MAX_EPOCH_BLOCKS}, "
                                    f"got {value!r}", field=field)
            values[attr] = value
        else:
            ppm = parse_ppm(value, field=field)
            limit = PPM if kind == "ratio" else MAX_SLOPE_PPM if attr == "volatility_slope_ppm" else MAX_WEIGHT_PPM
            if not 0 <= ppm <= limit:
                raise ProtocolError("invalid_field", f"{field} must be in 0..{format_ppm(limit)}", field=field)
            values[attr] = ppm
    params = MakerRewardParams(**values)
    problem = ""
    if params.sample_interval_blocks < 1:
        problem = "sample_interval_blocks must be at least 1"
    elif params.epoch_blocks and params.epoch_blocks < params.sample_interval_blocks:
        problem = "epoch_blocks must be 0 (off) or at least sample_interval_blocks"
    elif params.min_rest_blocks > params.sample_interval_blocks:
        problem = "min_rest_blocks must not exceed sample_interval_blocks"
    elif not 0 < params.band_ppm < PPM:
        problem = "band must be above 0 and below 1"
    elif params.max_share_per_maker_ppm == 0:
        problem = "max_share_per_maker must be above 0"
    elif params.max_volatility_weight_ppm < PPM:
        problem = "max_volatility_weight must be at least 1"
    if problem:
        raise ProtocolError("invalid_maker_reward_params", problem, field=path)
    return params


def format_maker_reward_params(params: MakerRewardParams) -> dict[str, Any]:
    """The genesis form of ``params`` (``bastion scenario defaults``)."""
    out: dict[str, Any] = {}
    for name, (attr, kind) in _FIELDS.items():
        value = getattr(params, attr)
        out[name] = value if kind == "count" else format_ppm(value)
    return out


# --------------------------------------------------------------------------------------- the pool
def fund_pool(state: State, fee_after_insurance: int) -> int:
    """Move ``pool_share_ppm`` of a fill's fees left after the insurance share into the reward pool
    (rounded down); return the amount, which the caller takes off what goes to the fees account."""
    share = state.maker_reward_params.pool_share_ppm
    if not share or fee_after_insurance <= 0:
        return 0
    amount = ppm_of_down(fee_after_insurance, share)
    if amount:
        state.maker_rewards.pool += amount
        state.touch(("maker_rewards",))
    return amount


# --------------------------------------------------------------------------------------- the end-of-block step
def run_maker_rewards(state: State, events: Events) -> None:
    """End-of-block step: record the rest cutoff for the next sample, sample the books at sampling
    heights, and close the epoch when it has run ``epoch_blocks`` blocks. Nothing while
    ``epoch_blocks`` is 0."""
    params = state.maker_reward_params
    if not params.epoch_blocks:
        return
    height, interval, rest = state.height, params.sample_interval_blocks, params.min_rest_blocks
    rewards = state.maker_rewards
    if rest and (height + rest - 1) % interval == 0:
        rewards.rest_cutoff_height = height + rest - 1
        rewards.rest_cutoff_ms = state.time_ms
        state.touch(("maker_rewards",))
    if height % interval == 0:
        sample_books(state, params, rewards)
    if height - rewards.epoch_start_height >= params.epoch_blocks:
        close_epoch(state, params, rewards, events)


def sample_books(state: State, params: MakerRewardParams, rewards: MakerRewards) -> None:
    """One sample of every active market with a fresh oracle (see the module docstring)."""
    if not params.min_rest_blocks:
        cutoff: int | None = None  # every resting order counts
    elif rewards.rest_cutoff_height == state.height:
        cutoff = rewards.rest_cutoff_ms
    else:
        cutoff = -1  # no cutoff recorded for this height (just after a parameter change): nothing has rested
    for ticker, market in state.markets.items():
        if market.status != ACTIVE or market.stale or market.oracle_price <= 0:
            continue
        price = market.oracle_price
        weight = maker_volatility_weight_ppm(rewards.last_prices.get(ticker, 0), price,
                                             slope_ppm=params.volatility_slope_ppm,
                                             max_weight_ppm=params.max_volatility_weight_ppm)
        rewards.last_prices[ticker] = price
        rewards.samples[ticker] = rewards.samples.get(ticker, 0) + 1
        if cutoff != -1:
            low, high = maker_band_ticks(price, band_ppm=params.band_ppm)
            touched = False
            for (owner, number), (bid, ask) in market.book.maker_depth(low, high, cutoff).items():
                if bid <= 0 or ask <= 0:
                    continue
                score = maker_sample_score(bid, ask, price, weight, size_decimals=market.size_decimals,
                                           price_decimals=market.price_decimals)
                key = (owner, number, ticker)
                entry = rewards.scores.get(key)
                if entry is None:
                    rewards.scores[key] = [score, 1]
                else:
                    entry[0] += score
                    entry[1] += 1
                touched = True
            if touched:
                state.touch(("maker_scores", ticker))   # one leaf per market: one encoding per sample
    state.touch(("maker_rewards",))


def maker_standings(state: State) -> list[dict[str, Any]]:
    """The running epoch's score of every maker with a sample, with its parts per market, highest
    score first (then by owner and number): ``{"owner", "number", "score", "markets": [{"market",
    "weighted_depth", "two_sided_samples", "samples", "score"}]}``. What ``close_epoch`` pays on."""
    rewards = state.maker_rewards
    makers: dict[tuple[str, int], dict[str, Any]] = {}
    for (owner, number, ticker), (weighted, two_sided) in rewards.scores.items():
        samples = rewards.samples.get(ticker, 0)
        score = maker_epoch_score(weighted, two_sided, samples)
        entry = makers.setdefault((owner, number), {"owner": owner, "number": number, "score": 0, "markets": []})
        entry["score"] += score
        entry["markets"].append({"market": ticker, "weighted_depth": weighted, "two_sided_samples": two_sided,
                                 "samples": samples, "score": score})
    for entry in makers.values():
        entry["markets"].sort(key=lambda part: part["market"])
    return sorted(makers.values(), key=lambda entry: (-entry["score"], entry["owner"], entry["number"]))


def close_epoch(state: State, params: MakerRewardParams, rewards: MakerRewards, events: Events) -> None:
    """Pay the epoch's pool pro rata by score (capped per maker) and start the next epoch; what is
    not paid stays in the pool. Emits ``maker_score`` per maker and market, ``maker_reward_paid``
    per maker with a score, then ``maker_reward_epoch``."""
    standings = maker_standings(state)
    total = sum(entry["score"] for entry in standings)
    pool = rewards.pool
    cap = ppm_of_down(pool, params.max_share_per_maker_ppm)
    paid = 0
    for entry in sorted(standings, key=lambda e: (e["owner"], e["number"])):
        owner, number = entry["owner"], entry["number"]
        for part in entry["markets"]:
            emit(events, ev.MakerScore, epoch=rewards.epoch, owner=owner, number=number, market=part["market"],
                 weighted_depth=part["weighted_depth"], two_sided_samples=part["two_sided_samples"],
                 samples=part["samples"], score=part["score"])
        if entry["score"] <= 0:
            continue
        amount = maker_reward(pool, entry["score"], total, max_share_ppm=params.max_share_per_maker_ppm)
        if amount:
            sub = state.subaccounts[(owner, number)]
            sub.balance += amount
            state.touch(sub.key)
        paid += amount
        emit(events, ev.MakerRewardPaid, epoch=rewards.epoch, owner=owner, number=number, score=entry["score"],
             total_score=total, pool=pool, cap=cap, amount=amount)
    emit(events, ev.MakerRewardEpoch, epoch=rewards.epoch, start_height=rewards.epoch_start_height,
         end_height=state.height, pool=pool, total_score=total, makers=len(standings), paid=paid,
         rolled_over=pool - paid)
    for ticker in dict.fromkeys(ticker for _, _, ticker in rewards.scores):
        state.touch(("maker_scores", ticker))
    rewards.pool = pool - paid
    rewards.paid_total += paid
    rewards.epoch += 1
    rewards.epoch_start_height = state.height
    rewards.samples = {}
    rewards.scores = {}
    state.touch(("maker_rewards",))
