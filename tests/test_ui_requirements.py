"""UI requirements as governed per-market parameters (issue 20, ``bastion.core.governance.ui_rules``):
the ``set_ui_requirements`` action's classes and refusals, the state they live in (hashed, snapshot,
genesis), and what the adapters do with them: the API's market view, the order preview (the golden
scenario ``ui_requirements_preview`` changes what it returns) and the trade page (banner, leverage
selector, confirmation; the browser test is in ``test_ui_requirements_browser.py``)."""
from __future__ import annotations

import copy
import json
from decimal import Decimal
from pathlib import Path

import pytest
from builders import BTC, ETH, account, genesis, subaccount
from fastapi.testclient import TestClient

from bastion.api.preview import preview_order
from bastion.api.views import describe_market
from bastion.app import ApiConfig, create_app
from bastion.core.errors import ProtocolError
from bastion.core.genesis import build_state
from bastion.core.governance import classify, compute_action_changes
from bastion.core.governance.ui_rules import effective_ui_requirements
from bastion.core.hashing import compute_state_hash_full
from bastion.core.messages import decode_action
from bastion.core.params import UiRequirements
from bastion.core.snapshot import state_from_document, state_to_document
from bastion.node.node import Node
from bastion.scenario import replay_scenario
from bastion.web.mount import mount_web

SCENARIO = Path(__file__).parent / "scenarios" / "ui_requirements_preview.json"
A0 = "0x" + "0" * 38 + "a0"


def action(**fields) -> object:
    return decode_action({"type": "set_ui_requirements", "market": BTC, **fields}, 0)


def rows(state, act) -> list[tuple[str, object, object, str]]:
    return [(c.name, c.old, c.new, c.risk) for c in compute_action_changes(state, act)]


# --------------------------------------------------------------------------------------- the action
def test_each_field_is_one_change_with_its_risk_class():
    state = build_state(genesis())

    changed = rows(state, action(risk_banner="Leverage kills", isolation_threshold="0.7", default_leverage="4",
                                 max_leverage="10", confirm_above_leverage="8"))

    assert changed == [
        ("ui_requirements.BTC-USD.risk_banner", "", "Leverage kills", "risk_reducing"),          # a banner added
        ("ui_requirements.BTC-USD.isolation_threshold_ppm", 500_000, 700_000, "risk_increasing"),  # suggested later
        ("ui_requirements.BTC-USD.default_leverage_ppm", 0, 4_000_000, "risk_reducing"),
        ("ui_requirements.BTC-USD.max_leverage_ppm", 0, 10_000_000, "risk_reducing"),
        ("ui_requirements.BTC-USD.confirm_above_leverage_ppm", 0, 8_000_000, "risk_reducing"),
    ]
    assert classify.classify_proposal(state, (action(max_leverage="10"),))[1] == "risk_reducing"


def test_offering_more_leverage_or_removing_the_banner_increases_risk():
    state = build_state(genesis(ui_requirements={BTC: {"risk_banner": "x", "max_leverage": "5",
                                                      "confirm_above_leverage": "3"}}))

    assert rows(state, action(max_leverage="0")) == [
        ("ui_requirements.BTC-USD.max_leverage_ppm", 5_000_000, 0, "risk_increasing")]          # 0: the tier's
    assert rows(state, action(confirm_above_leverage="4"))[0][3] == "risk_increasing"
    assert rows(state, action(risk_banner=""))[0][3] == "risk_increasing"
    assert rows(state, action(risk_banner="y"))[0][3] == "neutral"
    assert classify.classify_proposal(state, (action(max_leverage="6"),))[1] == "risk_increasing"


@pytest.mark.parametrize("fields, code, field", [
    ({"default_leverage": "6", "max_leverage": "5"}, "invalid_leverage", "default_leverage"),
    ({"max_leverage": "0.99"}, "invalid_leverage", "max_leverage"),
    ({"confirm_above_leverage": "0.5"}, "invalid_leverage", "confirm_above_leverage"),
    ({"isolation_threshold": "0"}, "invalid_field", "isolation_threshold"),
    ({"isolation_threshold": "1.000001"}, "invalid_field", "isolation_threshold"),
    ({"risk_banner": "tab\there"}, "invalid_risk_banner", "risk_banner"),
    ({"max_leverage": "5.0000001"}, "too_many_decimals", "max_leverage"),
    ({"market": "DOGE-USD"}, "unknown_market", "market"),
])
def test_bad_input_is_refused_with_its_code(fields, code, field):
    state = build_state(genesis())

    with pytest.raises(ProtocolError) as refused:
        compute_action_changes(state, action(**fields))

    assert (refused.value.code, refused.value.fields.get("field")) == (code, field)


@pytest.mark.parametrize("fields, code", [
    ({"risk_banner": "x" * 281}, "risk_banner_too_long"),
    ({"max_leverage": "five"}, "invalid_decimal"),
    ({"max_leverage": 5}, "invalid_field"),
    ({"leverage": "5"}, "unknown_field"),
])
def test_malformed_fields_are_refused_when_decoded(fields, code):
    with pytest.raises(ProtocolError) as refused:
        decode_action({"type": "set_ui_requirements", "market": BTC, **fields}, 0)
    assert refused.value.code == code


def test_a_banner_of_the_maximum_length_is_taken():
    state = build_state(genesis())
    assert rows(state, action(risk_banner="é" * 280))[0][2] == "é" * 280


# --------------------------------------------------------------------------------------- the state
def test_requirements_are_hashed_kept_in_snapshots_and_set_by_genesis():
    plain = build_state(genesis())
    governed = build_state(genesis(ui_requirements={BTC: {"risk_banner": "Perps \"can\" liquidate",
                                                          "max_leverage": "5", "default_leverage": "2"}}))

    assert governed.ui_requirements == {BTC: UiRequirements('Perps "can" liquidate', 500_000, 2_000_000,
                                                             5_000_000, 0)}
    assert governed.state_hash != plain.state_hash == compute_state_hash_full(plain)
    assert governed.state_hash == compute_state_hash_full(governed)
    restored = state_from_document(json.loads(json.dumps(state_to_document(governed))))
    assert restored.ui_requirements == governed.ui_requirements and restored.state_hash == governed.state_hash
    assert effective_ui_requirements(plain, BTC) == UiRequirements()
    with pytest.raises(ProtocolError, match="genesis.ui_requirements"):
        build_state(genesis(ui_requirements={BTC: {"max_leverage": "0.5"}}))


# --------------------------------------------------------------------------------------- the scenario
def _states() -> tuple[object, object]:
    """The golden scenario's state before the proposal executes (block 8 left out) and after it."""
    data = json.loads(SCENARIO.read_text())
    before = copy.deepcopy(data)
    before["blocks"] = before["blocks"][:-1]
    return replay_scenario(before)[0], replay_scenario(data)[0]


def test_the_market_view_serves_the_governed_requirements():
    before, after = _states()

    assert describe_market(before, before.markets[BTC])["ui_requirements"] == {
        "risk_banner": None, "isolation_threshold": "0.5", "default_leverage": "20", "max_leverage": "20",
        "tier_max_leverage": "20", "confirm_above_leverage": None, "governed": False}
    assert describe_market(after, after.markets[BTC])["ui_requirements"] == {
        "risk_banner": "Perpetual futures: a 20% move can liquidate a 5x position.", "isolation_threshold": "0.3",
        "default_leverage": "3", "max_leverage": "5", "tier_max_leverage": "20", "confirm_above_leverage": "2",
        "governed": True}


def test_the_requirement_changes_what_the_preview_returns():
    """Numbers worked out in the scenario's notes."""
    before, after = _states()

    def preview(state, size):
        return preview_order(state, owner=A0, subaccount=0, market=BTC, side="buy", size=size, price="50000")

    half_before, half_after = preview(before, "0.5"), preview(after, "0.5")
    whole_before, whole_after = preview(before, "1"), preview(after, "1")
    ui = half_after["ui_requirements"]
    assert (ui["leverage_after"], ui["confirmation_required"], ui["over_max_leverage"]) == ("2.503128", True, False)
    assert half_after["accepted"] is True
    assert half_before["ui_requirements"]["leverage_after"] == "2.503128"
    assert (half_before["ui_requirements"]["confirmation_required"],
            half_before["ui_requirements"]["over_max_leverage"]) == (False, False)
    assert whole_before["accepted"] is True and whole_before["rejection"] is None
    assert whole_after["ui_requirements"]["leverage_after"] == "5.012531"
    assert whole_after["ui_requirements"]["over_max_leverage"] is True
    assert whole_after["accepted"] is False and whole_after["rejection"]["code"] == "ui_max_leverage"
    assert half_after["isolation"]["dominance_threshold"] == "0.3"


def test_a_reducing_order_is_never_refused_by_the_maximum():
    state = build_state(genesis(accounts=[account(A0, subaccount(0, "-40000", positions=[
        {"market": BTC, "size": "1"}])), account("0x" + "0" * 38 + "b0", subaccount(0, "60000", positions=[
            {"market": BTC, "size": "-1"}]))],
        ui_requirements={BTC: {"max_leverage": "2", "confirm_above_leverage": "2"}}))

    sell = preview_order(state, owner=A0, subaccount=0, market=BTC, side="sell", size="0.1", price="50000")
    buy = preview_order(state, owner=A0, subaccount=0, market=BTC, side="buy", size="0.1", price="50000")

    assert sell["ui_requirements"]["over_max_leverage"] is False and sell["accepted"] is True
    assert sell["ui_requirements"]["confirmation_required"] is False
    assert buy["ui_requirements"]["over_max_leverage"] is True and buy["rejection"]["code"] == "ui_max_leverage"


def test_the_isolation_threshold_is_the_governed_one():
    """ETH (30% of the maintenance) next to a BTC position: over a 0.25 threshold, under the default 0.5."""
    positions = [{"market": BTC, "size": "0.1"}]
    accounts = [account(A0, subaccount(0, "5000", positions=positions)),
                account("0x" + "0" * 38 + "b0", subaccount(0, "100000", positions=[{"market": BTC, "size": "-0.1"}]))]

    def suggested(**extra) -> tuple[bool, str]:
        state = build_state(genesis(accounts=accounts, **extra))
        answer = preview_order(state, owner=A0, subaccount=0, market=ETH, side="buy", size="0.1", price="3000")
        share = answer["isolation"]["market_maintenance_share"]
        return "dominates_maintenance" in answer["isolation"]["reasons"], share

    default, share = suggested()
    governed, same_share = suggested(ui_requirements={ETH: {"isolation_threshold": "0.01"}})
    assert share == same_share and not default and governed


# --------------------------------------------------------------------------------------- API and page
@pytest.fixture
def served(tmp_path):
    node = Node(tmp_path / "n", genesis(ui_requirements={BTC: {"risk_banner": "Only 5x here", "max_leverage": "5",
                                                               "default_leverage": "3",
                                                               "confirm_above_leverage": "2"}}))
    app = create_app(node, ApiConfig())
    mount_web(app)
    client = TestClient(app)
    yield client
    node.close()


def test_the_api_and_the_trade_page_obey_the_requirement(served):
    owner = "0x" + "0" * 38 + "a0"
    market = served.get(f"/v1/markets/{BTC}").json()
    served.cookies.set("bastion_signer", "wallet")
    served.cookies.set("bastion_owner", owner)

    page = served.get(f"/trade/{BTC}").text
    other = served.get(f"/trade/{ETH}").text

    ui = market["ui_requirements"]
    assert ui["max_leverage"] == "5" and ui["risk_banner"] == "Only 5x here"
    assert 'id="risk-banner"' in page and "Only 5x here" in page and 'id="risk-banner"' not in other
    assert 'max="5" step="1" value="3"' in page      # the leverage selector: at most 5x, 3x offered first
    # 100,000 USDC buying 5 BTC at 50,000: about 2.5x, over the 2x confirmation
    preview = served.post("/v1/preview/order", json={"owner": owner, "subaccount": 0, "market": BTC, "side": "buy",
                                                     "size": "5", "price": "50000"}).json()
    assert preview["ui_requirements"]["confirmation_required"] is True
    fragment = served.post("/ui/preview", json={"owner": owner, "subaccount": 0, "market": BTC, "side": "buy",
                                                "size": "5", "price": "50000"},
                           headers={"origin": "http://testserver"}).text
    assert 'data-confirm="true"' in fragment and 'id="preview-confirm"' in fragment


def test_the_sdk_refuses_over_the_maximum_and_asks_for_a_confirmation(tmp_path):
    """``Client.place_order_checked`` through the API's own app (the SDK's httpx client on the test
    transport): 100,000 USDC buying 5 BTC (about 2.5x) needs ``confirm``, 11 BTC (about 5.5x) is refused."""
    from eth_account import Account

    from bastion.client import BastionError, Client

    key = "0x" + "a7" * 32
    owner = Account.from_key(key).address.lower()
    node = Node(tmp_path / "n", genesis(accounts=[account(owner, subaccount(0, "100000"))],
                                        ui_requirements={BTC: {"max_leverage": "5", "confirm_above_leverage": "2"}}))
    try:
        test_client = TestClient(create_app(node, ApiConfig()))
        client = Client("http://testserver", key, transport=test_client._transport)
        order = {"market": BTC, "side": "buy", "price": Decimal("50000"), "client_id": 1}

        with pytest.raises(BastionError) as over:
            client.place_order_checked(size=Decimal("11"), **order)
        with pytest.raises(BastionError) as unconfirmed:
            client.place_order_checked(size=Decimal("5"), **order)
        accepted = client.place_order_checked(size=Decimal("5"), confirm=True, **order)

        assert over.value.code == "ui_max_leverage" and unconfirmed.value.code == "confirmation_required"
        assert accepted["status"] == "accepted"
    finally:
        node.close()
