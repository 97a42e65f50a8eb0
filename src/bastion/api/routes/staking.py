"""Insurance staking routes (``bastion.core.staking``): the funds' staked parts, targets and gaps,
each fund's share price history and fee APR, a staker's holdings and unstake requests.

``GET /v1/staking`` the parameters and, per fund: fund, staked and protocol-owned parts, shares,
share price, target and gap, replenishing flag and fee share, the stakers' cumulative fees and losses,
and ``fee_apr`` (below); ``GET /v1/staking/{pool}/history`` the share price samples;
``GET /v1/staking/stakers/{owner}`` one staker's free shares and pending requests with their value.

**History and APR.** The node's committed states are sampled after every block
(``StakingHistory.on_block``, a block listener of the node like the WebSocket hub): a pool's sample
is kept when its staked part, shares, fees or losses changed, at most ``MAX_SAMPLES`` per pool, in
memory (a restarted node starts a new history). ``fee_apr`` is the stakers' fees over the window
(``window_s``, default 7 days, or since the first sample) divided by the staked part at its start,
scaled to a year of 365 days: a decimal ratio ("0.0512"), null while there is nothing to measure.
"""
from __future__ import annotations

import threading
import weakref
from collections import deque
from typing import Any, Final

from fastapi import APIRouter, Query

from bastion.api import models
from bastion.api.context import NOT_FOUND as bad_pool   # 400 unknown_pool
from bastion.api.context import ApiContext
from bastion.core.errors import ProtocolError
from bastion.core.messages import normalize_address
from bastion.core.staking import format_staking_params
from bastion.core.state import State
from bastion.core.timefmt import format_iso_ms
from bastion.core.units import format_ppm, format_usdc
from bastion.node.blocklog import LoggedBlock
from bastion.presentation import describe_staking

MAX_SAMPLES: Final = 4_096
YEAR_MS: Final = 365 * 86_400_000
DEFAULT_WINDOW_S: Final = 7 * 86_400
MAX_WINDOW_S: Final = 366 * 86_400

# a sample: (height, time_ms, staked, shares, fees_earned, losses_borne)
Sample = tuple[int, int, int, int, int, int]


class StakingHistory:
    """Per pool, the samples of its staking record after the blocks that changed it (module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.samples: dict[str, deque[Sample]] = {}

    def record(self, state: State) -> None:
        """Add a sample for every pool whose staking record differs from its last sample."""
        with self._lock:
            for pool, r in state.stake_pools.items():
                if r.shares == 0 and pool not in self.samples:
                    continue
                row = (state.height, state.time_ms, r.staked, r.shares, r.fees_earned, r.losses_borne)
                kept = self.samples.setdefault(pool, deque(maxlen=MAX_SAMPLES))
                if not kept or kept[-1][2:] != row[2:]:
                    kept.append(row)

    def listener_for(self, node: Any) -> Any:
        """A block listener for ``node``: sample its committed state under its lock."""
        def listener(block: LoggedBlock) -> None:
            with node.lock:
                self.record(node.state)
        return listener

    def of(self, pool: str) -> list[Sample]:
        with self._lock:
            return list(self.samples.get(pool, ()))


_HISTORIES: weakref.WeakKeyDictionary[Any, StakingHistory] = weakref.WeakKeyDictionary()
_HISTORIES_LOCK = threading.Lock()


def history_of(node: Any) -> StakingHistory:
    """The node's staking history (one per node, shared by the API and the web page), created and
    registered as a block listener of the node the first time it is asked for."""
    with _HISTORIES_LOCK:
        history = _HISTORIES.get(node)
        if history is None:
            history = _HISTORIES[node] = StakingHistory()
            with node.lock:
                history.record(node.state)
            node.block_listeners.append(history.listener_for(node))
        return history


def fee_apr(samples: list[Sample], now_ms: int, window_ms: int) -> str | None:
    """The stakers' fee APR over the window (module docstring), or None: the fees earned since the
    state at the window's start (the last sample at or before it, else the first sample) over the
    staked part then, per year."""
    if not samples:
        return None
    start_ms = now_ms - window_ms
    base = samples[0]
    for sample in samples:
        if sample[1] > start_ms:
            break
        base = sample
    elapsed = now_ms - max(base[1], start_ms)
    if base[2] <= 0 or elapsed <= 0:
        return None
    return format_ppm((samples[-1][4] - base[4]) * YEAR_MS * 1_000_000 // (base[2] * elapsed))


def describe_sample(sample: Sample) -> dict[str, Any]:
    height, time_ms, staked, shares, fees, losses = sample
    return {"height": height, "time": format_iso_ms(time_ms), "time_ms": time_ms, "staked": format_usdc(staked),
            "shares": format_usdc(shares), "share_price": format_usdc(staked * 1_000_000 // shares) if shares else "1",
            "fees_earned": format_usdc(fees), "losses_borne": format_usdc(losses)}


def staking_routes(ctx: ApiContext) -> APIRouter:
    """``/v1/staking``, ``/v1/staking/{pool}/history``, ``/v1/staking/stakers/{owner}``; registers the
    share price history as a block listener of the node."""
    router = APIRouter()
    node = ctx.node
    history = history_of(node)

    @router.get("/v1/staking", response_model=models.Open, tags=["risk"])
    def staking(window_s: int = Query(DEFAULT_WINDOW_S, ge=1, le=MAX_WINDOW_S)) -> Any:
        """The staking parameters and every fund's staked part, target, gap and fee APR."""
        with node.lock:
            state = node.state
            described, params, now_ms = describe_staking(state), format_staking_params(state.insurance_staking), \
                state.time_ms
            height = state.height
        for pool, entry in described["pools"].items():
            entry["fee_apr"] = fee_apr(history.of(pool), now_ms, window_s * 1_000)
        return {"height": height, "params": params, "pools": described["pools"]}

    @router.get("/v1/staking/{pool}/history", response_model=models.Open, responses=bad_pool, tags=["risk"])
    def staking_history(pool: str, limit: int = Query(500, ge=1, le=MAX_SAMPLES)) -> Any:
        """A fund's share price samples (oldest first, the last ``limit``)."""
        with node.lock:
            if pool not in node.state.insurance_funds:
                raise ProtocolError("unknown_pool", f"no insurance fund {pool!r}", field="pool")
        return {"pool": pool, "samples": [describe_sample(s) for s in history.of(pool)[-limit:]]}

    @router.get("/v1/staking/stakers/{owner}", response_model=models.Open, tags=["accounts"])
    def staker(owner: str) -> Any:
        """One staker's free shares per fund and pending unstake requests, with their value now."""
        owner = normalize_address(owner, field="owner")
        with node.lock:
            state = node.state
            described = describe_staking(state)
            return {"height": state.height, "owner": owner, "cooldown_ms": state.insurance_staking.cooldown_ms,
                    "stakes": [s for s in described["stakes"] if s["owner"] == owner],
                    "unstake_requests": [r for r in described["unstake_requests"] if r["owner"] == owner]}
    return router
