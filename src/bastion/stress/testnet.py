"""The "testnet result": a proposal replayed over the real recent block log (issue 20).

The synthetic sweep asks what crashes would do to today's positions; this asks what the last ``N``
days would have done with the change in force. ``replay_recent(data, actions, days)`` takes a
node's data directory and:

1. picks the window: the blocks whose time is within ``days`` days of the head's, at most
   ``max_blocks`` of them (the latest; ``truncated`` says when the bound cut the window);
2. rebuilds the state just before the window from the log (``stress.chainlog.state_at``);
3. replays every logged block of the window twice through the state machine, with the logged
   transactions, nonces and block times (the real order flow and oracle prices): **without** the
   change (it must end at the logged state hash: ``baseline_reproduced``, the check that the replay
   is the chain) and **with** it (the proposal's parameter changes applied first, as at execution,
   without the synthetic worst-case fill of the sweep: this is the order flow that happened);
4. reports both side by side: transactions refused, fills, liquidations, deleveragings, bad debt,
   the insurance funds at the end and their lowest point, and the transactions whose outcome the
   change flips (accepted in one run, refused in the other), with the first few as examples.

An upgrade has no parameter to apply: its replay runs the log through *this* checkout's state
machine, so the stand-in for "the new engine over the recent log" is this command run from the new
code's checkout (only one engine exists; docs/stress.md). ``bastion stress --replay-days N
--proposal ID`` adds the section to the report (``testnet``) beside the synthetic sweep; it is part
of the hashed document and of the HTML page. Integers only, deterministic: the same log gives the
same section.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Final

from bastion.core.messages import decode_message
from bastion.core.snapshot import state_from_document, state_to_document
from bastion.core.state import State
from bastion.core.transition import apply_block
from bastion.stress.report import hash_report
from bastion.stress.runner import StressRun
from bastion.stress.chainlog import VerifyInputError, state_at

DAY_MS: Final = 86_400_000
MAX_BLOCKS: Final = 5_000           # the default bound of a replay window (blocks)
EXAMPLES: Final = 10                # flipped outcomes shown


def _window(log: Any, days: int, max_blocks: int) -> tuple[int, int, bool]:
    """(first height, head height, truncated): the blocks within ``days`` of the head, at most ``max_blocks``."""
    head = log.head()
    if head is None:
        raise VerifyInputError("the log holds no block to replay")
    since_ms = head.time_ms - days * DAY_MS
    low, high = 1, head.height      # the first block with time >= since_ms (block times never go back)
    while low < high:
        middle = (low + high) // 2
        if log.block(middle).time_ms >= since_ms:
            high = middle
        else:
            low = middle + 1
    first = max(low, head.height - max_blocks + 1)
    return first, head.height, first > low


class _Tally:
    """What one replay saw."""

    def __init__(self, state: State) -> None:
        self.counts = {"txs_refused": 0, "fills": 0, "liquidations": 0, "deleveragings": 0, "bad_debt_usdc": 0}
        self.lowest_funds = sum(state.insurance_funds.values())
        self.outcomes: list[tuple[int, int, bool, str | None]] = []   # (height, index, ok, code)

    def add(self, state: State, results: list[dict[str, Any]], events: list[dict[str, Any]]) -> None:
        for index, result in enumerate(results):
            self.outcomes.append((state.height, index, bool(result["ok"]), result.get("code")))
            self.counts["txs_refused"] += 0 if result["ok"] else 1
        for event in events:
            kind = event["type"]
            if kind == "fill":
                self.counts["fills"] += 1
            elif kind == "liquidation":
                self.counts["liquidations"] += 1
            elif kind == "deleveraging":
                self.counts["deleveragings"] += 1
            elif kind == "bad_debt":
                self.counts["bad_debt_usdc"] += int(event["amount"])
        self.lowest_funds = min(self.lowest_funds, sum(state.insurance_funds.values()))

    def document(self, state: State) -> dict[str, Any]:
        return {**self.counts, "insurance_funds_usdc": [[pool, amount] for pool, amount in
                                                        sorted(state.insurance_funds.items())],
                "lowest_insurance_funds_total_usdc": self.lowest_funds, "final_state_hash": state.state_hash}


def _with_change(state: State, actions: tuple[Any, ...]) -> State:
    """A copy of ``state`` with the proposal's parameter changes applied (no worst-case fill)."""
    from bastion.stress.proposal import plan_proposal

    return plan_proposal(state, actions, worst_case_fill=False).state


def add_testnet(stress_run: StressRun, section: dict[str, Any]) -> StressRun:
    """``stress_run`` with the ``testnet`` section in its report (a new document, so a new hash)."""
    return dataclasses.replace(stress_run, report=hash_report({**stress_run.report.document, "testnet": section}))


def replay_recent(data: Path, actions: tuple[Any, ...], days: int, *, max_blocks: int = MAX_BLOCKS,
                  proposal_id: str | None = None,
                  window: tuple[int, int, bool] | None = None) -> dict[str, Any]:
    """The ``testnet`` section (module docstring) for ``actions`` over the last ``days`` days of the
    log in ``data`` (``window``: that of an earlier section, ``(from_height, to_height, truncated)``,
    which ``bastion stress --verify`` replays again). Raises ``VerifyInputError`` for a missing log."""
    from bastion.node.blocklog import BlockLog

    if days < 1 or max_blocks < 1:
        raise VerifyInputError("--replay-days and the block bound must be at least 1")
    path = data / "blocks.db"
    if not path.is_file():
        raise VerifyInputError(f"{data} holds no block log (blocks.db)")
    log = BlockLog(path)
    try:
        first, last, truncated = _window(log, days, max_blocks) if window is None else window
        if log.block(last) is None or not 1 <= first <= last:
            raise VerifyInputError(f"the log does not hold blocks {first}..{last}")
        start = state_at(data, first - 1)
        runs = {"without_change": state_from_document(state_to_document(start)),
                "with_change": _with_change(start, actions)}
        tallies = {name: _Tally(state) for name, state in runs.items()}
        txs = 0
        for block in log.iter_blocks(first):
            if block.height > last:
                break
            logged = block.txs
            typed = [(tx.sender, decode_message(tx.msg)) for tx in logged]
            nonces = [tx.nonce for tx in logged]
            txs += len(logged)
            for name, state in runs.items():
                result = apply_block(state, block.time_ms, list(typed), nonces)
                tallies[name].add(state, result.results, result.events)
        head = log.block(last)
    finally:
        log.close()
    assert head is not None
    without, with_ = tallies["without_change"], tallies["with_change"]
    flipped = [(a, b) for a, b in zip(without.outcomes, with_.outcomes) if a[2] != b[2]]
    return {
        "proposal_id": proposal_id, "days": days, "from_height": first, "to_height": last,
        "blocks": last - first + 1, "txs": txs, "max_blocks": max_blocks, "truncated": truncated,
        "baseline_reproduced": runs["without_change"].state_hash == head.state_hash,
        "without_change": without.document(runs["without_change"]),
        "with_change": with_.document(runs["with_change"]),
        "outcomes_flipped": len(flipped),
        "flipped_examples": [{"height": a[0], "tx": a[1], "without_change": a[3] or "ok", "with_change": b[3] or "ok"}
                             for a, b in flipped[:EXAMPLES]],
    }
