"""An IntaSend simulator (M-Pesa STK push collections), served by the sandbox under ``/intasend``.

API (as IntaSend's, under ``/intasend/api/v1`` from outside):

- ``POST /api/v1/payment/mpesa-stk-push/``: ``Authorization: Bearer <secret>`` and
  ``INTASEND_PUBLIC_API_KEY: <publishable>`` (the header may be absent unless
  ``SANDBOX_INTASEND_STRICT_PUBLIC_KEY`` is set: gunicorn drops underscore headers;
  when sent it must match). Body ``{currency:"KES", method:"M-PESA", amount,
  phone_number:"2547…", api_ref?, name?, email?, narrative?, wallet_id?}`` →
  ``{id, invoice:{…}, customer:{…}, payment_link, refundable, created_at, updated_at}``.
- ``POST /api/v1/payment/collection/``: the older form, ``public_key`` in the body.
- ``POST /api/v1/payment/status/`` ``{invoice_id, public_key}`` (a Bearer, if sent,
  must match) → ``{invoice:{…}, meta:{…}}``; another account's or unknown id: 404.
- ``GET /api/v1/transactions/?start_date=<ISO>&end_date=<ISO>&page=<n>`` (Bearer, as
  the STK push; a guessed DRF shape, unverified: ``sandbox.intasend.statement``) →
  ``{count, next, previous, results: [{invoice_id, state, …, updated_at}]}``: the
  account's COMPLETE and FAILED invoices with ``start_date <= updated_at < end_date``,
  oldest first, ``SANDBOX_INTASEND_LIST_PAGE_SIZE`` (100) a page.
- Errors: 401 ``{"detail": "Invalid authentication credentials"}`` (or "... were not
  provided."), 404 ``{"detail": "Not found."}``, 400
  ``{"type": "client_error", "errors": [{"code", "detail", "attr"}]}``.

The built-in account (``accounts.BUILTIN_*``): publishable key
``ISPubKey_test_7c0a5b8e-3f1d-4a62-9b1e-2d4c6f8a0b13``, secret
``ISSecretKey_test_4e9d2a17-6b3c-4f08-8a5d-1c7e9b2f6a40``, wallet ``QZ7WOPR``,
dashboard challenge ``malipo-sandbox-challenge`` (its webhook URL is unset
unless ``SANDBOX_INTASEND_WEBHOOK_URL`` says one).

Life cycle: PENDING on creation, PROCESSING at half of ``callback_delay_s``,
COMPLETE or FAILED at it; a webhook (the flat invoice + ``challenge``) on each
change, retried after each of ``SANDBOX_INTASEND_RETRY_DELAYS_S`` (default
1,2,4,8,16 s) until answered 2xx. ``charges`` = ``SANDBOX_INTASEND_FEE_PERCENT``
(default 3.5) % of the value, ``net_amount`` = value − charges.

Built-in phones (no scenario needed):

====================  ==========================================================
254700001032          FAILED, failed_code "1032" (Request cancelled by user)
254700000001          FAILED, "1" (insufficient balance)
254700002001          FAILED, "2001" (wrong PIN: initiator information invalid)
254700001037          FAILED, "1037" (DS timeout user cannot be reached)
254700001019          FAILED, "1019" (transaction expired)
254700009999          COMPLETE without any webhook
254700009998          COMPLETE, its COMPLETE webhook delivered twice
254700009997          COMPLETE, then a PROCESSING webhook after the COMPLETE one
254700009996          stays PROCESSING (never finishes)
254700009995          COMPLETE, amounts as JSON numbers instead of strings
anything else         COMPLETE, one webhook per state change
====================  ==========================================================

Controls (``/intasend/_sim/…`` from outside):

- ``POST /_sim/webhooks {public_key, url, challenge}``: the account's dashboard
  webhook (``url: null`` removes it); ``GET`` lists them.
- ``POST /_sim/accounts {publishable_key?, secret_key?, wallet_id?}`` → 201 the
  account (missing keys generated in IntaSend's shapes); ``GET`` lists them.
- ``POST /_sim/scenarios {match: {phone} | {amount}, outcome: complete|fail|pending,
  failed_code?, failed_reason?, webhook: once|twice|none|processing_after_complete,
  push_error?: {status, times?, body?: detail|errors|html, detail?}, push_delay_s?,
  amount_style?: strings|numbers, delay_s?}`` → 201; ``GET`` lists, ``DELETE`` clears.
  Newest match wins: phone first, then amount, then the built-in phones.
  ``push_delay_s`` answers the push late *after* creating the invoice.
- ``POST /_sim/statement/discrepancies {kind, …}`` → 201: what the transaction list
  gets wrong — ``amount_changed {invoice_id, amount}`` (another ``value``),
  ``receipt_repeated {invoice_id}`` (the row twice), ``dropped {invoice_id}`` (left
  out), ``failed {invoice_id, failed_code?, failed_reason?}`` (FAILED there and in
  ``payment/status/``), ``gateway_only {public_key, amount, phone, api_ref?}`` (a
  COMPLETE invoice nothing pushed or announced; answered with its row). ``GET``
  lists, ``DELETE`` clears (and forgets the gateway-only invoices); reset clears too.
- ``GET /_sim/requests?kind=stk_push|collection|status|transactions|other``: API requests
  (path, headers with the Bearer redacted, body, status, response).
- ``GET /_sim/deliveries?invoice_id=``: webhook attempts (invoice_id, state, url,
  attempt, body, status or error).
- ``GET /_sim/invoices``, ``GET /_sim/invoices/{invoice_id}``,
  ``POST /_sim/invoices/{invoice_id}/resend`` (the current state, now).
- ``POST /_sim/reset``, ``GET /_sim/health``.
"""

from __future__ import annotations

from sandbox.config import SimulatorConfig
from sandbox.intasend.app import IntaSendSimulator, create_simulator
from sandbox.mounts import MountedSimulator

PREFIX = "/intasend"

__all__ = ["PREFIX", "IntaSendSimulator", "create_simulator", "mount"]


def mount(config: SimulatorConfig) -> MountedSimulator:
    """The simulator served under ``/intasend``; ``state`` is the :class:`IntaSendSimulator`."""
    simulator = create_simulator(config)
    return MountedSimulator(
        prefix=PREFIX, app=simulator.app, close=simulator.close, state=simulator
    )
