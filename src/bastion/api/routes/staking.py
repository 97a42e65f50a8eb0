"""Insurance staking routes (``bastion.core.staking``): the funds' staked parts, targets and gaps,
each fund's share price history and fee APR, a staker's holdings and unstake requests.

``GET /v1/staking`` the parameters and, per fund: fund, staked and protocol-owned parts, shares,
share price, target and gap, replenishing flag and fee share, the stakers' cumulative fees and losses,
and ``fee_apr`` (below); ``GET /v1/staking/{pool}/history`` the share price samples;
``GET /v1/staking/stakers/{owner}`` one staker's free shares and pending requests with their value.

**History and APR.** The node's committed states are sampled after every block
(``StakingHistory.listener_for``, a block listener of the node like the WebSocket hub): a pool's
sample is kept when its staked part, shares, fees or losses changed, at most ``MAX_SAMPLES`` per
pool. The samples are also appended to ``staking_history.jsonl`` in the node's data directory (one
JSON array a line) and read back when the node starts, so a restart keeps the history; the file is
a view, not the chain: a torn or malformed line is skipped, a line above the chain's height is
dropped, the file is rewritten with the samples kept once it holds twice as many lines, and a
failure to read or write it is a warning (the history then lives in memory only), never a reason
to stop a block. ``fee_apr`` is the stakers' fees over the window
(``window_s``, default 7 days, or since the first sample) divided by the staked part at its start,
scaled to a year of 365 days: a decimal ratio ("0.0512"), null while there is nothing to measure.
"""
from __future__ import annotations

import json
import os
import threading
import weakref
from collections import deque
from collections.abc import Callable
from pathlib import Path
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
HISTORY_FILE: Final = "staking_history.jsonl"   # in the node's data directory

# a sample: (height, time_ms, staked, shares, fees_earned, losses_borne)
Sample = tuple[int, int, int, int, int, int]


class StakingHistory:
    """Per pool, the samples of its staking record after the blocks that changed it, kept in memory
    and, with a ``path``, in that file too (module docstring)."""

    def __init__(self, path: Path | None = None, *, height: int | None = None,
                 on_warning: Callable[[str], None] | None = None) -> None:
        """``path``: the history file, read now (samples above ``height``, the chain's head, are
        dropped) and appended to by ``record``; ``on_warning`` hears about a file that cannot be
        read or written."""
        self._lock = threading.Lock()
        self.samples: dict[str, deque[Sample]] = {}
        self._path = path
        self._lines = 0   # lines in the file
        self._warn = on_warning or (lambda message: None)
        if path is not None:
            self._load(path, height)

    def _load(self, path: Path, height: int | None) -> None:
        try:
            lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
        except (OSError, UnicodeDecodeError) as error:
            self._give_up(f"cannot read {path}: {error!r}")
            return
        for line in lines:
            row = _parse_line(line)
            if row is None or (height is not None and row[1] > height):
                continue
            kept = self.samples.setdefault(row[0], deque(maxlen=MAX_SAMPLES))
            if not kept or kept[-1][0] < row[1]:
                kept.append(row[1:])
        self._lines = len(lines)
        self._compact(path)

    def _compact(self, path: Path) -> None:
        """Once the file holds twice the samples kept, replace it by them (written aside, then
        renamed over it), so it stays within 2 x ``MAX_SAMPLES`` lines per pool."""
        kept_rows = sum(len(kept) for kept in self.samples.values())
        if self._lines <= 2 * kept_rows:
            return
        aside = path.with_name(path.name + ".tmp")
        try:
            aside.write_text("".join(_line(pool, row) for pool, kept in sorted(self.samples.items()) for row in kept),
                             encoding="utf-8")
            os.replace(aside, path)
        except OSError as error:
            self._give_up(f"cannot rewrite {path}: {error!r}")
            return
        self._lines = kept_rows

    def _give_up(self, message: str) -> None:
        self._path = None
        self._warn(f"staking history: {message}; from now on it is kept in memory only")

    def record(self, state: State) -> None:
        """Add a sample for every pool whose staking record differs from its last sample (and
        append the new samples to the file)."""
        with self._lock:
            added = []
            for pool, r in state.stake_pools.items():
                if r.shares == 0 and pool not in self.samples:
                    continue
                row = (state.height, state.time_ms, r.staked, r.shares, r.fees_earned, r.losses_borne)
                kept = self.samples.setdefault(pool, deque(maxlen=MAX_SAMPLES))
                if not kept or (kept[-1][2:] != row[2:] and kept[-1][0] < row[0]):
                    kept.append(row)
                    added.append(_line(pool, row))
            path = self._path
            if added and path is not None:
                try:
                    with path.open("a", encoding="utf-8") as file:
                        file.write("".join(added))
                except OSError as error:
                    self._give_up(f"cannot append to {path}: {error!r}")
                    return
                self._lines += len(added)
                self._compact(path)

    def listener_for(self, node: Any) -> Any:
        """A block listener for ``node``: sample its committed state under its lock."""
        def listener(block: LoggedBlock) -> None:
            with node.lock:
                self.record(node.state)
        return listener

    def of(self, pool: str) -> list[Sample]:
        with self._lock:
            return list(self.samples.get(pool, ()))


def _line(pool: str, row: Sample) -> str:
    return json.dumps([pool, *row], separators=(",", ":")) + "\n"


def _parse_line(line: str) -> tuple[str, int, int, int, int, int, int] | None:
    """A file line as (pool, height, time_ms, staked, shares, fees_earned, losses_borne), or None."""
    try:
        value = json.loads(line)
    except ValueError:
        return None
    if (not isinstance(value, list) or len(value) != 7 or not isinstance(value[0], str)
            or not all(type(item) is int and item >= 0 for item in value[1:])):
        return None
    pool, height, time_ms, staked, shares, fees, losses = value
    return pool, height, time_ms, staked, shares, fees, losses


_HISTORIES: weakref.WeakKeyDictionary[Any, StakingHistory] = weakref.WeakKeyDictionary()
_HISTORIES_LOCK = threading.Lock()


def history_of(node: Any) -> StakingHistory:
    """The node's staking history (one per node, shared by the API and the web page), created (from
    the file in its data directory) and registered as a block listener of the node the first time
    it is asked for."""
    with _HISTORIES_LOCK:
        history = _HISTORIES.get(node)
        if history is None:
            data_dir = getattr(node, "data_dir", None)
            with node.lock:
                history = _HISTORIES[node] = StakingHistory(
                    None if data_dir is None else Path(data_dir) / HISTORY_FILE, height=node.state.height,
                    on_warning=getattr(node, "on_warning", None))
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
