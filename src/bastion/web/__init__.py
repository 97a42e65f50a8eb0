"""The web UI: server-rendered pages (Jinja2) mounted on the API app, no build step.

Pages (``mount_web``)::

    /                      markets: parameters, oracle, best bid and ask, open interest, funding
    /trade/{ticker}        book, trades, candles chart, order form, live preview, isolation suggestion and its
                           one-click isolated trade
    /portfolio             the chosen account: per-asset exposure, cross versus isolated, open orders
    /governance            proposals: action diff, risk class and timelock, votes, attestations; vote and submit
    /risk                  the public risk model's parameters and their history, insurance funds, concentration
    /liquidations          liquidations, deleveraging (ADL) and bad debt, from the read models
    /disputes              disputes (claims, rulings, appeals), targets open to dispute, incident programs;
                           /disputes/{id}: one dispute with its evidence, replayed from the log

Charts are plotly.js, served by the node itself from the installed ``plotly`` package
(``/vendor/plotly.min.js``); no page loads anything from another origin. Live updates: a small
script (``static/app.js``) subscribes to the API's WebSocket channels and re-renders the page's
``data-live`` sections from the server.

Who acts: the page-level selector sets a cookie (``bastion_signer`` = ``demo:NAME`` or ``wallet``,
``bastion_owner`` = the address). A wallet signs envelopes in the browser (``eth_signTypedData_v4``
over the shape of ``GET /v1/signing``) and posts them to ``/v1/tx``. In demo mode (``bastion demo``
passes ``create_app(..., demo=...)``, a ``bastion.web.features.DemoFeatures`` built over the **demo
keys** of ``bastion.demo``: never use in production) ``POST /ui/demo/submit`` signs a message as the
chosen demo trader and takes it through the API's own intake, and ``POST /ui/demo/faucet`` credits a
wallet from the demo bridge. Production page code never imports ``bastion.demo``.

Modules: ``mount`` (``mount_web``), ``context`` (what the routers share), ``pages`` (the pages),
``actions`` (the live preview, the demo endpoints), ``features`` (the demo interface), ``reads``
(page-specific reads of the state).
"""
from __future__ import annotations

from bastion.web.mount import mount_web

__all__ = ["mount_web"]
