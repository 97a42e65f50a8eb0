// Bastion: tells the signed-in trader, on every page, when one of their positions is liquidated.
//
// It listens to the `blocks` channel of /v1/ws and, at most once a second after a block, asks
// /v1/liquidations?owner=OWNER&cursor=H.S for the rows after the last one it has seen (the cursor is
// kept per owner in sessionStorage, so moving between pages neither repeats nor misses one). The first
// visit takes the rows already there as seen. New rows show a toast (role="alert", one per position,
// the pieces of a liquidation adding up in it) that stays until dismissed. Vanilla, no dependency; styles are set through the DOM (the CSP allows no inline
// <style>).
(function () {
  "use strict";
  const settingsElement = document.getElementById("bastion-settings");
  const owner = settingsElement ? (JSON.parse(settingsElement.textContent).owner || "") : "";
  if (!owner || !window.WebSocket || !window.fetch) return;
  const storageKey = "bastion_liquidations_cursor:" + owner.toLowerCase();
  const WORDS = {
    liquidation: "was liquidated",
    deleveraging: "was deleveraged (ADL)",
    bad_debt: "left bad debt",
    liquidation_incomplete: "could not be fully liquidated",
  };
  let busy = false;
  let lastAsk = 0;

  function readCursor() {
    try { return sessionStorage.getItem(storageKey); } catch (error) { return null; }
  }
  function writeCursor(value) {
    try { sessionStorage.setItem(storageKey, value); } catch (error) { /* private mode: per page only */ }
  }

  function container() {
    let box = document.getElementById("liquidation-alerts");
    if (!box) {
      box = document.createElement("div");
      box.id = "liquidation-alerts";
      Object.assign(box.style, {position: "fixed", top: "4.5rem", right: "0.75rem", zIndex: "1000",
        maxWidth: "min(28rem, calc(100vw - 1.5rem))", display: "flex", flexDirection: "column", gap: "0.5rem"});
      document.body.appendChild(box);
    }
    return box;
  }

  // One toast per position and page: the pieces of one liquidation (it goes in steps, block after
  // block) add up in the toast already shown rather than stacking a toast each.
  const shown = new Map();

  function describe(group) {
    const first = group.rows[0];
    const last = group.rows[group.rows.length - 1];
    const kinds = [...new Set(group.rows.map((row) => WORDS[row.type] || String(row.type).replace(/_/g, " ")))];
    const size = group.rows.reduce((sum, row) => sum + (row.type === "liquidation" ? Math.abs(Number(row.size) || 0) : 0), 0);
    const pieces = group.rows.filter((row) => row.type === "liquidation").length;
    const amount = pieces ? ": " + size.toLocaleString("en-US", {maximumFractionDigits: 8}) + " closed at " +
      Number(last.price).toLocaleString("en-US") + (pieces > 1 ? " (last of " + pieces + " pieces)" : "") : "";
    const reasons = group.rows.filter((row) => row.type === "liquidation_incomplete" && row.reason)
      .map((row) => String(row.reason).replace(/_/g, " "));
    const blocks = first.height === last.height ? "block " + first.height : "blocks " + first.height + "–" + last.height;
    return "Your " + first.market + " position (subaccount " + first.number + ") " + kinds.join(", ") + amount +
      (reasons.length ? " (" + reasons[reasons.length - 1] + ")" : "") + ", " + blocks + ".";
  }

  function toast(row) {
    const key = row.market + "/" + row.number;
    let group = shown.get(key);
    if (group && !group.item.isConnected) group = undefined;   // dismissed: a new toast
    if (!group) {
      const item = document.createElement("div");
      item.className = "liquidation-alert";
      item.setAttribute("role", "alert");
      Object.assign(item.style, {background: "#7f1d1d", color: "#fff", padding: "0.6rem 0.8rem",
        borderRadius: "6px", boxShadow: "0 2px 8px rgba(0,0,0,0.35)", display: "flex", gap: "0.6rem",
        alignItems: "flex-start"});
      const text = document.createElement("span");
      const close = document.createElement("button");
      close.type = "button";
      close.textContent = "×";
      close.setAttribute("aria-label", "dismiss");
      Object.assign(close.style, {background: "transparent", color: "inherit", border: "0", cursor: "pointer",
        fontSize: "1.1rem", lineHeight: "1"});
      close.addEventListener("click", () => item.remove());
      item.append(text, close);
      container().appendChild(item);
      group = {item: item, text: text, rows: []};
      shown.set(key, group);
    }
    group.rows.push(row);
    group.text.textContent = describe(group);
  }

  async function page(cursor) {
    const query = "owner=" + encodeURIComponent(owner) + "&limit=500" + (cursor ? "&cursor=" + cursor : "");
    const response = await fetch("/v1/liquidations?" + query);
    if (!response.ok) return null;
    return response.json();
  }

  // Read every row after the stored cursor; toast them unless this is the first visit (baseline).
  async function check() {
    if (busy) return;
    busy = true;
    try {
      const baseline = readCursor() === null;
      let cursor = baseline ? "" : readCursor();
      for (;;) {
        const answer = await page(cursor);
        if (!answer) break;
        for (const row of answer.rows) {
          if (!baseline) toast(row);
          cursor = row.height + "." + row.seq;
        }
        if (!answer.next_cursor || answer.rows.length === 0) break;
      }
      writeCursor(cursor);
    } catch (error) {
      /* the next block tries again */
    } finally {
      busy = false;
    }
  }

  function listen() {
    const socket = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/v1/ws");
    socket.addEventListener("open", () => socket.send(JSON.stringify({op: "subscribe", channel: "blocks"})));
    socket.addEventListener("message", () => {
      const now = Date.now();
      if (now - lastAsk < 1000) return;
      lastAsk = now;
      check();
    });
    socket.addEventListener("close", () => setTimeout(listen, 3000));
  }

  check();
  listen();
})();
