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
  await describeAnswer(msg, answer);
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

// ------------------------------------------------------------------ the status line, in words
function groupDigits(decimal) {  // "50012.5" -> "50,012.5": the decimal string as it is, digits grouped
  const [whole, fraction] = String(decimal).split(".");
  const sign = whole.startsWith("-") ? "-" : "", digits = sign ? whole.slice(1) : whole;
  return sign + digits.replace(/\B(?=(\d{3})+(?!\d))/g, ",") + (fraction !== undefined ? "." + fraction : "");
}

function addDecimals(a, b) {  // exact sum of two non-negative decimal strings (no float)
  const places = Math.max((a.split(".")[1] || "").length, (b.split(".")[1] || "").length);
  const scaled = (x) => BigInt(x.split(".")[0] + (x.split(".")[1] || "").padEnd(places, "0"));
  const total = (scaled(a) + scaled(b)).toString().padStart(places + 1, "0");
  return places ? (total.slice(0, -places) + "." + total.slice(-places)).replace(/\.?0+$/, "") : total;
}

async function describeFills(msg, answer) {
  // "Bought 0.05 BTC-USD at 50,012.5": the taker fills of the order, read from its block's events
  const result = answer.result || {};
  const side = msg.side === "buy" ? "Bought" : "Sold";
  let fills = [];
  try {
    const block = await (await fetch("/v1/blocks/" + answer.height)).json();
    fills = (block.events || []).filter((e) => e.type === "fill" && e.taker && e.taker.order_id === result.order_id);
  } catch (error) { /* the words below still say that it filled */ }
  if (!fills.length) return side + " part of the order " + msg.market;
  const size = fills.reduce((total, f) => addDecimals(total, f.size), "0");
  const prices = [...new Set(fills.map((f) => f.price))];
  const fee = fills.reduce((total, f) => addDecimals(total, f.taker.fee || "0"), "0");
  return side + " " + groupDigits(size) + " " + msg.market + " at " + prices.map(groupDigits).join(", ") +
         (fills.length > 1 ? " (" + fills.length + " fills)" : "") + ", fee " + groupDigits(fee) + " USDC";
}

const DONE = {cancel_order: "Order cancelled", vote: "Vote recorded", deposit: "Deposit credited",
              transfer: "Transfer done", set_margin_mode: "Margin mode set", submit_proposal: "Proposal submitted",
              queue: "Proposal queued", execute: "Proposal executed", cancel_all: "Orders cancelled",
              set_leverage: "Leverage set", authorize_agent: "Agent authorised", revoke_agent: "Agent revoked"};

async function describeCommitted(msg, answer) {
  const result = answer.result || {}, block = " (block " + answer.height + ")";
  if (msg.type !== "place_order") {
    const done = DONE[msg.type] || (msg.type.replace(/_/g, " ") + ": done");
    return done + (msg.type === "vote" ? ": " + msg.option : "") + block;
  }
  const order = msg.side + " " + groupDigits(msg.size) + " " + msg.market + " at " + groupDigits(msg.price);
  if (!result.filled) {
    return (result.status === "open" ? "Order placed, resting in the book: " + order
                                     : "Order " + order + " did not fill and was cancelled") + block;
  }
  const filled = await describeFills(msg, answer);
  const rest = result.status === "filled" ? "" : result.status === "partially_filled" && msg.time_in_force !== "ioc"
    ? "; the rest rests in the book" : "; the rest was cancelled";
  return filled + rest + block;
}

async function describeAnswer(msg, answer) {
  if (answer.status === "committed") {
    const result = answer.result || {};
    if (result.ok === false) {
      showStatus("Refused in block " + answer.height + ": " + result.message + " (" + result.code + ")", true);
    } else {
      showStatus(await describeCommitted(msg, answer), false);
    }
  } else if (answer.status === "pending") {
    showStatus("Sent; not yet in a block", false);
  } else {
    showStatus("Not sent: " + (answer.message || "") + (answer.code ? " (" + answer.code + ")" : ""), true);
  }
}

function showStatus(text, bad) {
  const box = document.getElementById("tx-status");
  box.onclick = () => { box.hidden = true; };  // a click dismisses it; the next transaction shows it again
  box.title = "click to dismiss";
  box.hidden = false;
  box.textContent = text;
  box.className = "tx-status " + (bad ? "bad" : "ok");
}

const faucet = document.getElementById("faucet");
if (faucet) faucet.addEventListener("click", async () => {
  await describeAnswer({type: "deposit"}, await postJson("/ui/demo/faucet", {address: SETTINGS.owner}));
  refreshNow();
});

// ------------------------------------------------------------------ live updates
function drawCharts() {
  if (!window.Plotly) return;
  document.querySelectorAll("[data-chart]").forEach((element) => {
    const source = document.getElementById(element.dataset.chart);
    if (!source) return;
    const spec = JSON.parse(source.textContent), style = getComputedStyle(document.documentElement);
    const ink = style.getPropertyValue("--fg").trim(), grid = style.getPropertyValue("--line").trim();
    const layout = {...spec.layout, paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)", font: {color: ink},
                    xaxis: {...(spec.layout.xaxis || {}), gridcolor: grid}, yaxis: {...(spec.layout.yaxis || {}), gridcolor: grid}};
    window.Plotly.react(element, spec.data, layout, {displayModeBar: false, responsive: true});
  });
  drawDepth(lastDepth);  // the theme's colours
}

// The depth chart (trade page): cumulative size of the bids below and the asks above, as steps out from
// the spread, with the oracle as a vertical line. Drawn from the book's levels as the page was rendered
// (#depth-levels) and then from every push of the book WebSocket ({bids, asks: [[price, size], ...]}).
let lastDepth = null;
function cumulativeSteps(levels) {  // best level first: the running total of the sizes (display only)
  let total = 0;
  return {x: levels.map((level) => Number(level[0])), y: levels.map((level) => (total += Number(level[1])))};
}

function drawDepth(book) {
  const element = document.getElementById("chart-depth");
  if (!element || !window.Plotly || !book) return;
  lastDepth = book;
  const style = getComputedStyle(document.documentElement), ink = style.getPropertyValue("--fg").trim();
  const grid = style.getPropertyValue("--line").trim();
  const bids = cumulativeSteps(book.bids || []), asks = cumulativeSteps(book.asks || []);
  const oracle = Number(oraclePrice() || book.oracle || 0), top = Math.max(0, ...bids.y, ...asks.y);
  const data = [
    {type: "scatter", mode: "lines", name: "bids", x: bids.x, y: bids.y, line: {shape: "hv", color: "#16a34a"},
     fill: "tozeroy", fillcolor: "rgba(22, 163, 74, 0.2)", hovertemplate: "%{y} at %{x} or better<extra>bids</extra>"},
    {type: "scatter", mode: "lines", name: "asks", x: asks.x, y: asks.y, line: {shape: "hv", color: "#dc2626"},
     fill: "tozeroy", fillcolor: "rgba(220, 38, 38, 0.2)", hovertemplate: "%{y} at %{x} or better<extra>asks</extra>"}];
  const layout = {height: 200, margin: {l: 50, r: 10, t: 10, b: 30}, showlegend: false,
                  paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)", font: {color: ink},
                  xaxis: {gridcolor: grid, title: {text: "price"}}, yaxis: {gridcolor: grid, title: {text: "cumulative size"}},
                  shapes: oracle ? [{type: "line", x0: oracle, x1: oracle, y0: 0, y1: top || 1, line: {dash: "dot", color: ink, width: 1}}] : []};
  window.Plotly.react(element, data, layout, {displayModeBar: false, responsive: true});
  element.dataset.height = String(book.height === undefined ? "" : book.height);
  element.dataset.bidTotal = String(bids.y.length ? bids.y[bids.y.length - 1] : 0);
  element.dataset.askTotal = String(asks.y.length ? asks.y[asks.y.length - 1] : 0);
}

// Tables of many columns (class "cards") become one card a row on a phone (style.css): each cell is
// labelled with its column's header, copied here into data-label (after every live refresh too).
function labelCells() {
  document.querySelectorAll("table.cards").forEach((table) => {
    const headers = Array.from(table.querySelectorAll("thead th"), (th) => th.textContent.trim());
    table.querySelectorAll("tr").forEach((row) => {
      if (row.parentElement.tagName === "THEAD") return;
      Array.from(row.cells).forEach((cell, i) => { cell.dataset.label = headers[i] || ""; });
    });
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
      const focused = document.activeElement;  // someone is typing in this section: swap it at a later push
      if (focused && element.contains(focused) && focused.matches("input, textarea, select")) return;
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
    if (document.getElementById("account-tables")) showAccountPanel(accountPanel);
    showAccountSummary(false);
    labelCells();
    drawCharts();
    followOracle(false);
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
    const book = message.channel === "book" ? message : message.type === "subscribed" && message.snapshot &&
      message.snapshot.channel === "book" ? message.snapshot : null;
    if (book && SETTINGS.subscriptions.some((sub) => sub.channel === "book" && sub.market === book.market)) {
      drawDepth(book);  // the depth chart follows every push at once
    }
    if (message.channel && SETTINGS.refresh_on.includes(message.channel)) scheduleRefresh();
  };
  socket.onclose = () => setTimeout(connectSocket, 2000);
}

// ------------------------------------------------------------------ the trade page
// Exact decimals: a decimal string on a grid of `places` decimals is a BigInt count of units.
function toUnits(text, places) {  // "50012.5", 1 -> 500125n; null when not a non-negative decimal on the grid
  const match = /^(\d*)(?:\.(\d*))?$/.exec(String(text).trim());
  if (!match || (match[1] === "" && !match[2]) || (match[2] || "").length > places) return null;
  return BigInt((match[1] || "0") + (match[2] || "").padEnd(places, "0"));
}

function fromUnits(units, places) {  // 500125n, 1 -> "50012.5"
  const digits = units.toString().padStart(places + 1, "0");
  const text = places ? digits.slice(0, -places) + "." + digits.slice(-places) : digits;
  return places ? text.replace(/\.?0+$/, "") : text;
}

function guardPrice(base, side, slippage, places) {
  // the worst price a market order accepts: base moved by the slippage (a percent) against the trader, on the grid
  const ticks = toUnits(base, places), ppm = toUnits(slippage, 4);  // 1.5 (%) -> 15000 ppm
  if (ticks === null || ppm === null || ticks <= 0n) return null;
  const scaled = ticks * (side === "buy" ? 1000000n + ppm : 1000000n - ppm);
  const guarded = side === "buy" ? (scaled + 999999n) / 1000000n : scaled / 1000000n;
  return guarded > 0n ? fromUnits(guarded, places) : null;
}

function formValues(form) {
  const data = new FormData(form);
  return {subaccount: Number(data.get("subaccount") || 0), side: data.get("side"), size: String(data.get("size")).trim(),
          price: String(data.get("price")).trim(), time_in_force: data.get("time_in_force"),
          reduce_only: data.get("reduce_only") === "on", kind: data.get("kind") || "limit",
          unit: data.get("size_unit") || "coin", trigger: String(data.get("trigger_price") || "").trim(),
          slippage: String(data.get("slippage") || "").trim()};
}

function oraclePrice() {
  const cell = document.getElementById("book-oracle");
  return cell ? cell.dataset.oracle : "";
}

// The order the form describes: the place_order fields (size in the coin, price, type, trigger, time in
// force), or {error}. Market: an ioc market order whose price is the slippage guard around the oracle.
// Stop / take profit: a conditional order on the trigger price, a limit one when a limit price is given,
// else a market one guarded around the trigger. A size in USD is converted at the order's price (down).
function orderFromForm(form) {
  const v = formValues(form), sizeDecimals = Number(form.dataset.sizeDecimals);
  const priceDecimals = Number(form.dataset.priceDecimals);
  const conditional = v.kind === "stop" || v.kind === "take_profit";
  let price = v.price, orderType = v.kind, tif = v.time_in_force;
  if (v.kind === "market" || (conditional && !v.price)) {
    price = guardPrice(conditional ? v.trigger : oraclePrice(), v.side, v.slippage || "0", priceDecimals);
    if (price === null) return {error: conditional ? "type a trigger price" : "the slippage is not a percentage"};
    tif = "ioc";
  }
  if (conditional) {
    if (!v.trigger) return {error: "type a trigger price"};
    orderType = v.kind + (v.price ? "_limit" : "_market");
    if (v.price) tif = "gtc";
  }
  let size = v.size;
  if (v.unit === "usd") {
    const usd = toUnits(v.size, 6), reference = conditional && !v.price ? v.trigger : v.kind === "market" ? oraclePrice() : price;
    const ticks = toUnits(reference, priceDecimals);
    if (usd === null || ticks === null || ticks <= 0n) return {error: "type an amount in USD and a price"};
    size = fromUnits(usd * 10n ** BigInt(sizeDecimals + priceDecimals) / (ticks * 1000000n), sizeDecimals);
  }
  const order = {subaccount: v.subaccount, market: form.dataset.market, side: v.side, size: size, price: price,
                 order_type: orderType, time_in_force: tif, reduce_only: v.reduce_only};
  if (conditional) order.trigger_price = v.trigger;
  return order;
}

function showOrderHints(form) {
  const v = formValues(form), order = orderFromForm(form), base = form.dataset.market.split("-")[0];
  const coin = document.getElementById("size-coin"), guard = document.getElementById("guard-price");
  coin.textContent = order.error || v.unit !== "usd" ? "" : "= " + groupDigits(order.size) + " " + base;
  const guarded = !order.error && order.time_in_force === "ioc" && (v.kind !== "limit");
  guard.textContent = guarded ? "fills at " + (v.side === "buy" ? "most " : "least ") + groupDigits(order.price) : "";
}

const orderForm = document.getElementById("order-form");
const priceInput = document.getElementById("order-price");
let priceTyped = false;
let refreshPreview = () => {};

function chooseOrderKind(kind) {  // the order-type tabs: which fields show
  const was = document.getElementById("order-kind").value;
  document.querySelectorAll(".order-kind").forEach((tab) => tab.setAttribute("aria-selected", String(tab.dataset.kind === kind)));
  document.getElementById("order-kind").value = kind;
  const conditional = kind === "stop" || kind === "take_profit";
  orderForm.querySelectorAll(".when-trigger").forEach((e) => { e.hidden = !conditional; });
  orderForm.querySelectorAll(".when-price").forEach((e) => { e.hidden = kind === "market"; });
  orderForm.querySelectorAll(".when-slippage").forEach((e) => { e.hidden = kind === "limit"; });
  orderForm.querySelectorAll(".when-limit").forEach((e) => { e.hidden = kind !== "limit"; });
  orderForm.querySelector(".price-label").textContent = conditional ? "limit price (empty: market when triggered)" : "price";
  if (conditional && was !== "stop" && was !== "take_profit") {  // a conditional order's own limit: empty at first
    priceInput.value = "";
    priceTyped = true;
  } else if (kind === "limit" && !priceInput.value) {
    priceTyped = false;
    followOracle(true);
  }
  showOrderHints(orderForm);
  refreshPreview();
}

if (orderForm) {
  let timer = null, asked = 0;
  const preview = refreshPreview = async () => {  // only the answer to the latest question is shown
    const question = ++asked;
    const order = orderFromForm(orderForm);
    showOrderHints(orderForm);
    if (order.error) {
      document.getElementById("preview").textContent = order.error;
      return;
    }
    const response = await fetch("/ui/preview", {method: "POST", headers: {"content-type": "application/json"},
      body: JSON.stringify({owner: orderForm.dataset.owner, market: order.market, subaccount: order.subaccount,
                            side: order.side, size: order.size, price: order.price, reduce_only: order.reduce_only})});
    const html = await response.text();
    if (question === asked) document.getElementById("preview").innerHTML = html;
  };
  orderForm.addEventListener("input", (event) => {
    if (event.target === priceInput) priceTyped = true;  // the price stops following the oracle
    showOrderHints(orderForm);  // the size in the coin and the guard price follow every keystroke
    clearTimeout(timer);
    timer = setTimeout(preview, 200);
  });
  document.querySelectorAll(".order-kind").forEach((tab) => tab.addEventListener("click", () => chooseOrderKind(tab.dataset.kind)));
  // One click, one order: the button is disabled from the click until the node's answer, and the
  // order is judged by a fresh preview first; what the preview refuses is not signed nor sent.
  const placeButton = document.getElementById("place-order"), blocked = document.getElementById("order-blocked");
  let sending = false;
  orderForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (sending) return;
    sending = true;
    placeButton.disabled = true;
    try {
      clearTimeout(timer);
      const previous = document.getElementById("preview-verdict");
      if (previous) previous.dataset.accepted = "stale";  // only a verdict on these very values counts
      try { await preview(); } catch (error) { /* no fresh verdict: not sent */ }
      const order = orderFromForm(orderForm), verdict = document.getElementById("preview-verdict");
      if (order.error || !verdict || verdict.dataset.accepted !== "true") {
        const reason = order.error || (!verdict || verdict.dataset.accepted === "stale"
          ? "the preview could not be renewed; try again" : verdict.dataset.reason);
        blocked.hidden = false;
        blocked.textContent = "Not sent: " + reason;
        showStatus("Order not sent: " + reason, true);
        return;
      }
      // the market's governed UI requirements: above its confirmation leverage the trader confirms first
      if (verdict.dataset.confirm === "true" && !window.confirm(verdict.dataset.confirmText)) {
        blocked.hidden = false;
        blocked.textContent = "Not sent: the leverage confirmation was declined";
        return;
      }
      blocked.hidden = true;
      await sendMessage({type: "place_order", ...order, client_id: 1 + Math.floor(Math.random() * 2147483646)});
      preview();
    } finally {
      sending = false;
      placeButton.disabled = false;
    }
  });
  const useOracle = document.getElementById("use-oracle");
  if (useOracle) useOracle.addEventListener("click", () => { priceTyped = false; followOracle(true); });
  preview();
}

// The price field shows the oracle (as the book's middle row, refreshed live) until the trader types in it.
function followOracle(force) {
  const cell = document.getElementById("book-oracle");
  if (!priceInput || !cell) return;
  if (!force && document.activeElement === priceInput) return;  // the trader is about to type: keep still
  if (priceTyped && !force) {
    if (formValues(orderForm).kind === "market") refreshPreview();  // the guard moves with the oracle
    return;
  }
  if (priceInput.value !== cell.dataset.oracle) {
    priceInput.value = cell.dataset.oracle;
    refreshPreview();
  }
}
const marketSelect = document.getElementById("market-select");
if (marketSelect) marketSelect.addEventListener("change", () => { location.href = "/trade/" + marketSelect.value; });

// Click-to-fill: a level of the book puts its price in the form (a limit order at that price).
function useBookLevel(row) {
  if (!orderForm) return;
  if (formValues(orderForm).kind === "market") chooseOrderKind("limit");
  priceInput.value = row.dataset.price;
  priceTyped = true;
  refreshPreview();
}

// The account tabs (positions, open orders, fills, funding, liquidations): the choice survives live refreshes.
let accountPanel = (document.getElementById("account-tables") || {dataset: {}}).dataset.initialPanel || "panel-positions";
function showAccountPanel(panel) {
  accountPanel = panel;
  document.querySelectorAll(".account-tab").forEach((tab) => tab.setAttribute("aria-selected", String(tab.dataset.panel === panel)));
  document.querySelectorAll("#account-tables .tab-panel").forEach((element) => { element.hidden = element.id !== panel; });
}
document.querySelectorAll(".account-tab").forEach((tab) => tab.addEventListener("click", () => showAccountPanel(tab.dataset.panel)));

// Leverage: the slider's value is whole leverage; set_leverage takes the initial margin fraction 1/L
// in ppm, rounded up (so the cap is at most L).
const leverageForm = document.getElementById("leverage-form");
if (leverageForm) {
  const slider = document.getElementById("leverage"), shown = document.getElementById("leverage-value");
  slider.addEventListener("input", () => { shown.textContent = slider.value + "x"; });
  leverageForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const ppm = (1000000n + BigInt(slider.value) - 1n) / BigInt(slider.value);
    await sendMessage({type: "set_leverage", subaccount: Number(leverageForm.dataset.subaccount),
                       market: leverageForm.dataset.market, initial_margin: fromUnits(ppm, 6)});
    refreshPreview();
  });
}

// The account header and the leverage selector follow the form's subaccount (one summary per subaccount
// is rendered; the others are hidden). A live refresh keeps the choice; the slider moves only on a change.
function showAccountSummary(changed) {
  const select = orderForm && orderForm.querySelector("select[name=subaccount]");
  if (!select) return;
  let shown = null;
  document.querySelectorAll("#account-summary dl").forEach((dl) => {
    dl.hidden = dl.dataset.subaccount !== select.value;
    if (!dl.hidden) shown = dl;
  });
  if (!changed || !leverageForm) return;
  leverageForm.hidden = !shown;
  if (!shown) return;
  const slider = document.getElementById("leverage");
  leverageForm.dataset.subaccount = shown.dataset.subaccount;
  document.getElementById("leverage-subaccount").textContent = shown.dataset.subaccount;
  document.getElementById("leverage-max").textContent = shown.dataset.maxLeverage;
  slider.max = shown.dataset.maxLeverage;
  slider.value = shown.dataset.leverage;
  document.getElementById("leverage-value").textContent = slider.value + "x";
}
if (orderForm) {
  const select = orderForm.querySelector("select[name=subaccount]");
  if (select) select.addEventListener("change", () => showAccountSummary(true));
}

// Countdowns (the funding's, a proposal's next phase) run between refreshes (each refresh starts them
// again from the block time).
setInterval(() => {
  document.querySelectorAll("#funding-countdown, .countdown").forEach((element) => {
    const left = Math.max(0, Number(element.dataset.seconds) - 1);
    element.dataset.seconds = String(left);
    const h = Math.floor(left / 3600), m = Math.floor((left % 3600) / 60), s = left % 60;
    const two = (n) => String(n).padStart(2, "0");
    element.textContent = h ? h + "h " + two(m) + "m " + two(s) + "s" : m ? m + "m " + two(s) + "s" : s + "s";
  });
}, 1000);

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
  const d = button.dataset, v = orderFromForm(orderForm);
  if (v.error || v.side !== d.side || Number(v.size) !== Number(d.size) || Number(v.price) !== Number(d.price)) {
    showStatus("The preview was for another order: it is being renewed, check it and click again.", true);
    refreshPreview();
    return;
  }
  const target = Number(d.target), where = "subaccount " + target + " (isolated " + d.market + ")";
  const order = {type: "place_order", ...v, subaccount: target, market: d.market, side: d.side, size: d.size,
                 price: d.price, client_id: 1 + Math.floor(Math.random() * 2147483646)};
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
    if (msg === order) showStatus("From " + where + ": " + await describeCommitted(order, answer), false);
  }
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
  } else if (target.closest && target.closest("tr.level")) {
    useBookLevel(target.closest("tr.level"));
  } else if (target.classList.contains("close-position")) {
    await closePosition(target);
  } else if (target.classList.contains("tpsl")) {
    prepareTpSl(target);
  } else if (target.id === "theme-toggle") {
    toggleTheme();
  } else if (target.classList.contains("cancel")) {
    await sendMessage({type: "cancel_order", subaccount: Number(target.dataset.subaccount),
                       order_id: Number(target.dataset.orderId)});
  } else if (target.classList.contains("vote")) {
    const box = target.closest(".actions");
    const reason = box.querySelector(".vote-reason").value.trim();
    const msg = {type: "vote", proposal_id: box.dataset.proposalId, option: target.dataset.option};
    if (reason) msg.reason = reason;
    const buttons = box.querySelectorAll("button.vote");  // one vote per address: no second click meanwhile
    buttons.forEach((b) => { b.disabled = true; });
    const answer = await sendMessage(msg);  // once recorded, the refreshed section has no vote buttons
    if (refusalOf(answer)) buttons.forEach((b) => { b.disabled = false; });
  } else if (target.classList.contains("revoke-agent")) {
    target.disabled = true;
    const answer = await sendMessage({type: "revoke_agent", agent: target.dataset.agent});
    if (refusalOf(answer)) target.disabled = false;
  } else if (target.classList.contains("gov-action")) {
    await sendMessage({type: target.dataset.type, proposal_id: target.closest(".actions").dataset.proposalId});
  }
});

document.addEventListener("keydown", (event) => {  // a book level is a keyboard control too
  if ((event.key === "Enter" || event.key === " ") && event.target.matches && event.target.matches("tr.level")) {
    event.preventDefault();
    useBookLevel(event.target);
  }
});

// Close: a reduce-only market order for the whole position, guarded by the form's slippage (else 1%)
// around the mark. TP/SL: the stop tab, preset to close the position, waiting for a trigger price.
async function closePosition(button) {
  const d = button.dataset, slippage = (document.getElementById("order-slippage") || {}).value || "1";
  const price = guardPrice(d.mark, d.side, slippage, Number(d.priceDecimals));
  button.disabled = true;
  await sendMessage({type: "place_order", subaccount: Number(d.subaccount), market: d.market, side: d.side,
                     size: d.size, price: price, order_type: "market", time_in_force: "ioc", reduce_only: true,
                     client_id: 1 + Math.floor(Math.random() * 2147483646)});
  button.disabled = false;
}

function prepareTpSl(button) {
  if (!orderForm) return;
  const d = button.dataset;
  orderForm.querySelector("input[name=side][value=" + d.side + "]").checked = true;
  orderForm.querySelector("select[name=subaccount]").value = d.subaccount;
  document.getElementById("size-unit").value = "coin";
  document.getElementById("order-size").value = d.size;
  orderForm.querySelector("input[name=reduce_only]").checked = true;
  chooseOrderKind("stop");
  document.getElementById("order-trigger").focus();
}

// ------------------------------------------------------------------ theme (the choice is set early by theme.js)
function toggleTheme() {
  const root = document.documentElement;
  const dark = root.dataset.theme ? root.dataset.theme === "dark" : matchMedia("(prefers-color-scheme: dark)").matches;
  root.dataset.theme = dark ? "light" : "dark";
  localStorage.setItem("bastion-theme", root.dataset.theme);
  drawCharts();
}

// Agent keys (portfolio): authorise a key on one subaccount or all, with its permissions, until a block
// time counted from the chain's current one (GET /v1/status); the table refreshes once it committed.
const agentForm = document.getElementById("agent-form");
if (agentForm) agentForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const data = new FormData(agentForm), button = document.getElementById("authorize-agent");
  const permissions = ["trade", "cancel"].filter((name) => data.get(name) === "on");
  const count = Number(String(data.get("expires")).trim()), unit = Number(data.get("expires_unit"));
  if (!permissions.length) { showStatus("Choose at least one permission (trade, cancel).", true); return; }
  if (!Number.isInteger(count) || count <= 0) { showStatus("Expiry: a whole number of hours or days.", true); return; }
  button.disabled = true;
  try {
    const status = await (await fetch("/v1/status")).json();
    const msg = {type: "authorize_agent", agent: String(data.get("agent")).trim().toLowerCase(),
                 subaccounts: data.get("subaccount") === "all" ? null : [Number(data.get("subaccount"))],
                 permissions: permissions, expires_ms: Date.parse(status.time) + count * unit};
    const label = String(data.get("label")).trim();
    if (label) msg.label = label;
    const answer = await sendMessage(msg);
    if (!refusalOf(answer)) agentForm.reset();
  } finally {
    button.disabled = false;
  }
});

const proposalForm = document.getElementById("proposal-form");
if (proposalForm) proposalForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const data = new FormData(proposalForm);
  let actions;
  try { actions = JSON.parse(data.get("actions")); } catch (error) { showStatus("actions: not JSON", true); return; }
  const evidence = String(data.get("evidence") || "").split(/[\s,]+/).filter((hash) => hash);
  await sendMessage({type: "submit_proposal", title: data.get("title"), description: data.get("description"),
                     deposit: String(data.get("deposit")).trim(), actions: actions,
                     ...(evidence.length ? {evidence: evidence} : {})});
});

labelCells();
const depthLevels = document.getElementById("depth-levels");
if (depthLevels) lastDepth = JSON.parse(depthLevels.textContent);
drawCharts();
connectSocket();
