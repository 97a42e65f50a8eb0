// Bastion web UI: account selection, signing (demo key or EIP-1193 wallet), live updates, charts.
// No build step, no dependency but plotly.js (served by the node at /vendor/plotly.min.js).
"use strict";
const SETTINGS = JSON.parse(document.getElementById("bastion-settings").textContent);

// ------------------------------------------------------------------ who acts
function setCookie(name, value) {
  document.cookie = name + "=" + encodeURIComponent(value) + "; path=/; SameSite=Strict";
}

async function connectWallet() {
  if (!window.ethereum) {
    showStatus("No browser wallet found (an EIP-1193 provider, window.ethereum).", true);
    return false;
  }
  const accounts = await window.ethereum.request({method: "eth_requestAccounts"});
  setCookie("bastion_signer", "wallet");
  setCookie("bastion_owner", accounts[0].toLowerCase());
  return true;
}

document.getElementById("signer").addEventListener("change", async (event) => {
  const value = event.target.value;
  if (value === "wallet") {
    if (!(await connectWallet())) return;
  } else {
    setCookie("bastion_signer", value);
    setCookie("bastion_owner", SETTINGS.demo_traders[value.slice(5)]);
  }
  location.reload();
});

// ------------------------------------------------------------------ signing and submitting
function canonicalJson(value) {  // keys sorted, no whitespace: bastion.signing.canonical_message_json
  if (Array.isArray(value)) return "[" + value.map(canonicalJson).join(",") + "]";
  if (value !== null && typeof value === "object") {
    return "{" + Object.keys(value).sort().map((k) => JSON.stringify(k) + ":" + canonicalJson(value[k])).join(",") + "}";
  }
  return JSON.stringify(value);
}

let lastNonce = 0;
function nextNonce() {  // microseconds since the epoch, strictly increasing (the SDK's rule)
  lastNonce = Math.max(Date.now() * 1000, lastNonce + 1);
  return lastNonce;
}

async function ensureWalletChain(chainId) {
  // MetaMask signs typed data only for its active chain: ask it to switch to (or add) this one.
  const hex = "0x" + chainId.toString(16);
  try {
    const current = await window.ethereum.request({method: "eth_chainId"});
    if (current && parseInt(current, 16) === chainId) return;
  } catch (error) { /* not every provider answers */ }
  try {
    await window.ethereum.request({method: "wallet_switchEthereumChain", params: [{chainId: hex}]});
  } catch (error) {
    if (error && error.code === 4902) {
      try {
        await window.ethereum.request({method: "wallet_addEthereumChain", params: [{
          chainId: hex, chainName: "Bastion " + SETTINGS.chain_id, rpcUrls: [location.origin + "/rpc"],
          nativeCurrency: {name: "Bastion", symbol: "BGOV", decimals: 18}}]});
      } catch (ignored) { /* the signature request below says what the wallet thinks */ }
    }
  }
}

async function signWithWallet(msg) {
  const sender = SETTINGS.owner;
  const nonce = nextNonce();
  await ensureWalletChain(SETTINGS.signing.domain.chainId);
  const typed = {types: SETTINGS.signing.types, primaryType: "Envelope", domain: SETTINGS.signing.domain,
                 message: {sender: sender, nonce: nonce, msgType: msg.type, msg: canonicalJson(msg)}};
  const signature = await window.ethereum.request({method: "eth_signTypedData_v4",
                                                   params: [sender, JSON.stringify(typed)]});
  return {msg: msg, sender: sender, nonce: nonce, signature: signature};
}

async function postJson(url, body) {
  const response = await fetch(url, {method: "POST", headers: {"content-type": "application/json"},
                                     body: JSON.stringify(body)});
  return response.json();
}

async function submitMessage(msg) {
  // Sign (demo key on the node, or the wallet here) and submit; the node's answer after waiting for the
  // commit, or a refusal {status: "refused", code, message} when nothing could be sent.
  const signer = SETTINGS.signer;
  try {
    if (signer && signer.startsWith("demo:")) return await postJson("/ui/demo/submit", {trader: signer.slice(5), msg: msg});
    if (signer === "wallet") return await postJson("/v1/tx?wait_ms=5000", await signWithWallet(msg));
    return {status: "refused", code: "no_signer", message: "Choose a demo trader or connect a wallet first."};
  } catch (error) {
    return {status: "refused", code: "not_sent", message: error && error.message ? error.message : String(error)};
  }
}

async function sendMessage(msg) {
  const answer = await submitMessage(msg);
  describeAnswer(msg, answer);
  refreshNow();
  return answer;
}

function refusalOf(answer) {  // null when committed and applied; else why not ({code, message})
  if (answer.status === "committed") {
    const result = answer.result || {};
    return result.ok === false ? {code: result.code, message: result.message + " (in block " + answer.height + ")"} : null;
  }
  if (answer.status === "pending") return {code: "pending", message: "accepted but not committed within 5 s"};
  return {code: answer.code || "refused", message: answer.message || ""};
}

function describeAnswer(msg, answer) {
  if (answer.status === "committed") {
    const result = answer.result || {};
    if (result.ok === false) showStatus(msg.type + " refused in block " + answer.height + ": " + result.code + " — " + result.message, true);
    else showStatus(msg.type + " committed in block " + answer.height, false);
  } else if (answer.status === "pending") {
    showStatus(msg.type + " accepted, not yet committed", false);
  } else {
    showStatus(msg.type + " refused: " + (answer.code || "") + " " + (answer.message || ""), true);
  }
}

function showStatus(text, bad) {
  const box = document.getElementById("tx-status");
  box.hidden = false;
  box.textContent = text;
  box.className = "tx-status " + (bad ? "bad" : "ok");
}

const faucet = document.getElementById("faucet");
if (faucet) faucet.addEventListener("click", async () => {
  describeAnswer({type: "deposit"}, await postJson("/ui/demo/faucet", {address: SETTINGS.owner}));
  refreshNow();
});

// ------------------------------------------------------------------ live updates
function drawCharts() {
  if (!window.Plotly) return;
  document.querySelectorAll("[data-chart]").forEach((element) => {
    const source = document.getElementById(element.dataset.chart);
    if (!source) return;
    const spec = JSON.parse(source.textContent);
    window.Plotly.react(element, spec.data, spec.layout, {displayModeBar: false, responsive: true});
  });
}

let refreshing = false, refreshAgain = false, lastRefresh = 0;
async function refreshNow() {
  if (refreshing) { refreshAgain = true; return; }
  refreshing = true;
  lastRefresh = Date.now();
  try {
    const html = await (await fetch(location.href, {headers: {"x-bastion-live": "1"}})).text();
    const fresh = new DOMParser().parseFromString(html, "text/html");
    document.querySelectorAll("[data-live]").forEach((element) => {
      const replacement = fresh.getElementById(element.id);
      if (!replacement) return;
      // what the visitor typed inside a live section (a vote's reason) survives the swap
      const typed = Array.from(element.querySelectorAll("input, textarea"), (input) =>
        input.className && input.value !== input.defaultValue ? [input.closest("[id]") && input.closest("[id]").id, input.className, input.value] : null)
        .filter(Boolean);
      element.innerHTML = replacement.innerHTML;
      typed.forEach(([owner, className, value]) => {
        const scope = owner ? document.getElementById(owner) : element;
        const input = scope && scope.querySelector("." + className.split(" ")[0]);
        if (input) input.value = value;
      });
    });
    drawCharts();
  } catch (error) { /* the next push tries again */ }
  refreshing = false;
  if (refreshAgain) { refreshAgain = false; setTimeout(refreshNow, 300); }
}

function scheduleRefresh() {
  if (Date.now() - lastRefresh > 1000) refreshNow();
}

function connectSocket() {
  const socket = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/v1/ws");
  socket.onopen = () => SETTINGS.subscriptions.forEach((s) => socket.send(JSON.stringify({op: "subscribe", ...s})));
  socket.onmessage = (event) => {
    const message = JSON.parse(event.data);
    if (message.channel === "blocks" && message.height !== undefined) {
      document.getElementById("height").textContent = message.height;  // not the subscription's acknowledgement
    }
    if (message.channel && SETTINGS.refresh_on.includes(message.channel)) scheduleRefresh();
  };
  socket.onclose = () => setTimeout(connectSocket, 2000);
}

// ------------------------------------------------------------------ the trade page
function formValues(form) {
  const data = new FormData(form);
  return {subaccount: Number(data.get("subaccount") || 0), side: data.get("side"), size: String(data.get("size")).trim(),
          price: String(data.get("price")).trim(), time_in_force: data.get("time_in_force"),
          reduce_only: data.get("reduce_only") === "on"};
}

const orderForm = document.getElementById("order-form");
let refreshPreview = () => {};
if (orderForm) {
  let timer = null, asked = 0;
  const preview = refreshPreview = async () => {  // only the answer to the latest question is shown
    const question = ++asked;
    const v = formValues(orderForm);
    const response = await fetch("/ui/preview", {method: "POST", headers: {"content-type": "application/json"},
      body: JSON.stringify({owner: orderForm.dataset.owner, market: orderForm.dataset.market, subaccount: v.subaccount,
                            side: v.side, size: v.size, price: v.price, reduce_only: v.reduce_only})});
    const html = await response.text();
    if (question === asked) document.getElementById("preview").innerHTML = html;
  };
  orderForm.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(preview, 200); });
  orderForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const v = formValues(orderForm);
    await sendMessage({type: "place_order", subaccount: v.subaccount, market: orderForm.dataset.market, side: v.side,
                       size: v.size, price: v.price, client_id: 1 + Math.floor(Math.random() * 2147483646),
                       time_in_force: v.time_in_force, reduce_only: v.reduce_only});
    preview();
  });
  preview();
}
const marketSelect = document.getElementById("market-select");
if (marketSelect) marketSelect.addEventListener("change", () => { location.href = "/trade/" + marketSelect.value; });

// ------------------------------------------------------------------ trade isolated (the preview's button)
// The preview's setup messages (transfer, set_margin_mode; bastion.api.preview) and then the order from
// the target subaccount, one at a time, each after the previous one committed: a refused step stops
// the rest, and the outcome box says which step and why, and where any moved funds are.
function showOutcome(parts, bad, moveBack) {
  const box = document.getElementById("isolation-outcome");
  box.hidden = false;
  box.className = "isolation-outcome " + (bad ? "bad" : "ok");
  box.replaceChildren(...parts.map((text) => { const p = document.createElement("p"); p.textContent = text; return p; }));
  const link = document.createElement("a");
  link.href = "/portfolio";
  link.textContent = "See the portfolio";
  box.append(link);
  if (moveBack) {
    const button = document.createElement("button");
    button.type = "button";
    button.id = "move-back";
    button.textContent = "Move the funds of subaccount " + moveBack.from + " back to subaccount " + moveBack.to;
    button.addEventListener("click", () => moveFundsBack(button, moveBack));
    box.append(" ", button);
  }
}

async function tradeIsolated(button) {
  const d = button.dataset, v = formValues(orderForm);
  if (v.side !== d.side || Number(v.size) !== Number(d.size) || Number(v.price) !== Number(d.price)) {
    showStatus("The preview was for another order: it is being renewed, check it and click again.", true);
    refreshPreview();
    return;
  }
  const target = Number(d.target), where = "subaccount " + target + " (isolated " + d.market + ")";
  const order = {type: "place_order", subaccount: target, market: d.market, side: d.side, size: d.size, price: d.price,
                 client_id: 1 + Math.floor(Math.random() * 2147483646), time_in_force: v.time_in_force,
                 reduce_only: v.reduce_only};
  const steps = [...JSON.parse(d.setup), order];
  button.disabled = true;
  let funded = !steps.some((m) => m.type === "transfer");  // a reused subaccount already holds the funds
  for (let i = 0; i < steps.length; i++) {
    const msg = steps[i], step = "Step " + (i + 1) + " of " + steps.length + " (" + msg.type + ")";
    showStatus(step + ": sending", false);
    const answer = await submitMessage(msg);
    const refusal = refusalOf(answer);
    if (refusal) {
      const parts = [step + " refused: " + refusal.code + " — " + refusal.message,
                     "Not sent: " + (steps.slice(i + 1).map((m) => m.type).join(", ") || "nothing else") + "."];
      if (funded) parts.push("The funds stay in subaccount " + target + " and are shown in the portfolio; " +
                             "trade from it, or move them back.");
      showStatus(step + " refused: " + refusal.code, true);
      showOutcome(parts, true, funded ? {from: target, to: Number(d.source)} : null);
      button.disabled = false;
      refreshNow();
      return;
    }
    if (msg.type === "transfer") funded = true;
  }
  showStatus("place_order committed from " + where, false);
  showOutcome(["Placed isolated: the order is in " + where + ", funded with " + d.amount + " USDC; " +
               "subaccount " + d.source + " risks nothing on it."], false, null);
  refreshNow();
  refreshPreview();
}

async function moveFundsBack(button, move) {
  // the whole balance of the idle isolated subaccount, read now (an earlier attempt may have left more)
  button.disabled = true;
  const sub = await (await fetch("/v1/subaccounts/" + SETTINGS.owner + "/" + move.from)).json();
  const answer = await sendMessage({type: "transfer", subaccount: move.from, to_owner: SETTINGS.owner,
                                    to_subaccount: move.to, amount: sub.balance});
  if (refusalOf(answer)) { button.disabled = false; return; }
  showOutcome(["Moved " + sub.balance + " USDC from subaccount " + move.from + " back to subaccount " + move.to + "."],
              false, null);
  refreshPreview();
}

// ------------------------------------------------------------------ buttons inside live sections
document.addEventListener("click", async (event) => {
  const target = event.target;
  if (target.classList.contains("trade-isolated")) {
    await tradeIsolated(target);
  } else if (target.classList.contains("cancel")) {
    await sendMessage({type: "cancel_order", subaccount: Number(target.dataset.subaccount),
                       order_id: Number(target.dataset.orderId)});
  } else if (target.classList.contains("vote")) {
    const box = target.closest(".actions");
    const reason = box.querySelector(".vote-reason").value.trim();
    const msg = {type: "vote", proposal_id: box.dataset.proposalId, option: target.dataset.option};
    if (reason) msg.reason = reason;
    await sendMessage(msg);
  } else if (target.classList.contains("gov-action")) {
    await sendMessage({type: target.dataset.type, proposal_id: target.closest(".actions").dataset.proposalId});
  }
});

const proposalForm = document.getElementById("proposal-form");
if (proposalForm) proposalForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const data = new FormData(proposalForm);
  let actions;
  try { actions = JSON.parse(data.get("actions")); } catch (error) { showStatus("actions: not JSON", true); return; }
  await sendMessage({type: "submit_proposal", title: data.get("title"), description: data.get("description"),
                     deposit: String(data.get("deposit")).trim(), actions: actions});
});

drawCharts();
connectSocket();
