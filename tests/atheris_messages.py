"""Coverage-guided fuzzing of the message intake and the handlers with atheris (libFuzzer).

Optional: ``pip install atheris``. Run it directly for as long as you like::

    PYTHONPATH=src:tests python tests/atheris_messages.py -runs=100000 -max_len=512 -len_control=0

Each input picks a message type and a sender, then, per field, a valid value, a value of the
hostile table of ``test_fuzz_messages`` (``HOSTILE``), a run of digits of any length up to 6,000,
or raw fuzzer bytes as text or as an integer.
The property is that of ``test_fuzz_messages``: ``decode_message`` raises nothing but
``ProtocolError``; an applied message gives a result, a refusal leaves the state hash unchanged,
and the block's incremental hash equals the full recompute. ``tests/test_fuzz_messages.py`` runs a
short session of it when atheris is installed.
"""
from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports(include=["bastion"]):  # the whole core, through the test module's imports
    from bastion.core.errors import ProtocolError
    from bastion.core.messages import DECIMAL_FIELDS, MESSAGE_TYPES, decode_message
    from test_fuzz_messages import ACTION_TYPES, ACTION_VALUES, HOSTILE, MESSAGE_VALUES, SENDERS, check_applied

KINDS = sorted(MESSAGE_TYPES)
ACTION_KINDS = sorted(ACTION_TYPES)


def draw_value(data: atheris.FuzzedDataProvider, name: str) -> object:
    choice = data.ConsumeIntInRange(0, 7)
    valid = MESSAGE_VALUES.get(name) or ACTION_VALUES.get(name) or ["1"]
    if choice <= 3:
        return valid[data.ConsumeIntInRange(0, len(valid) - 1)]
    if choice == 4:
        return HOSTILE[data.ConsumeIntInRange(0, len(HOSTILE) - 1)]
    if choice == 5:
        return data.ConsumeUnicode(data.ConsumeIntInRange(0, 80))
    if choice == 6 or (choice > 4 and name in DECIMAL_FIELDS):  # a run of digits of any length (the poison decimal)
        digits = "7" * data.ConsumeIntInRange(1, 6_000)
        return digits if data.ConsumeBool() else digits + "." + digits[: data.ConsumeIntInRange(1, 40)]
    return data.ConsumeInt(data.ConsumeIntInRange(1, 40))


def draw_fields(data: atheris.FuzzedDataProvider, kind: str, cls: type) -> dict:
    import dataclasses

    out: dict = {"type": kind}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING and data.ConsumeBool():
            continue
        if f.name == "actions":
            actions = []
            for _ in range(data.ConsumeIntInRange(0, 3)):
                action_kind = ACTION_KINDS[data.ConsumeIntInRange(0, len(ACTION_KINDS) - 1)]
                actions.append(draw_fields(data, action_kind, ACTION_TYPES[action_kind]))
            out[f.name] = actions
        else:
            out[f.name] = draw_value(data, f.name)
    return out


def one_input(raw: bytes) -> None:
    data = atheris.FuzzedDataProvider(raw)
    kind = KINDS[data.ConsumeIntInRange(0, len(KINDS) - 1)]
    sender = SENDERS[data.ConsumeIntInRange(0, len(SENDERS) - 1)]
    msg = draw_fields(data, kind, MESSAGE_TYPES[kind])
    try:
        typed = decode_message(msg)
    except ProtocolError:
        return
    check_applied([(sender, typed)])


if __name__ == "__main__":
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
