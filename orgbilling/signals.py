"""Signals sent when a local subscription really changes state.

They are how a host app flips feature flags, enables SSO or sends mail, so
each one is sent once per real change: after the transaction commits (never
for a rolled-back write), never for a duplicate or stale event, and whichever
path saw the change first (webhook, checkout redirect, reconciliation).

Every signal is sent with ``sender=Subscription`` and the keyword arguments
``organization``, ``subscription`` and ``previous_status``: the status
Chargebee last gave the subscription, ``None`` for its first snapshot (a new
row, or the checkout row before Chargebee's first word about it).

* ``subscription_complete``: it became paid (``active``/``non_renewing``)
  coming from checkout, ``future`` or a trial: entitlements on.
* ``trial_started`` / ``trial_ended``: it entered / left ``in_trial``
  (a trial grants entitlements too).
* ``subscription_cancelled``: it became ``cancelled`` or ``transferred``:
  entitlements off.
* ``subscription_deleted``: it was deleted in Chargebee; the local row is kept,
  marked deleted and unlinked.
* ``subscription_updated``: any other change of the stored snapshot (plan,
  seats, items, periods, pause and resume, reactivation, scheduled
  cancellation and its removal). Read ``subscription.is_active`` to decide.

``seat_limit_changed`` is sent with ``sender=Organization`` and the keyword
arguments ``organization``, ``limit`` and ``previous`` (None: no cap, or none
set before) after the commit that changed the seat cap orgbilling wants
Scalekit to enforce (``orgbilling.seat_limits``); Scalekit may confirm it later.

With ``ORGBILLING_SEAT_SOURCE = "directory"`` (``orgbilling.directory_seats``),
also with ``sender=Organization``, after commit:
``seat_limit_exceeded(organization, used, limit, directory_user)`` when a
directory user's arrival would exceed the limit (the user is recorded as
blocked: keep them out of your user table), and
``seat_released(organization, directory_user)`` when a blocked user gets a
seat (seats added, or someone left): let them in.

Payment health, sent after commit like the others:

* ``payment_failed`` (``sender=Invoice``, ``organization``, ``invoice``): an
  invoice became due (its payment failed); once per invoice, not per retry.
* ``payment_recovered`` (``sender=Subscription``, ``organization``,
  ``subscription``): the subscription's due invoices count went back to 0.
* ``grace_period_ended`` (``sender=Subscription``, ``organization``,
  ``subscription``): it stayed past due for ``ORGBILLING_PAST_DUE_GRACE_DAYS``
  and stopped granting entitlements; sent once, by ``orgbilling_sync``.

``item_price_changed`` (``sender=ItemPrice``, ``item_price``, ``created``): a
price of the mirrored catalog changed (created, updated, archived, deleted),
after commit, by a webhook or ``orgbilling_sync``'s prices pass.
"""

from django.dispatch import Signal

subscription_complete = Signal()
subscription_updated = Signal()
subscription_cancelled = Signal()
subscription_deleted = Signal()
trial_started = Signal()
trial_ended = Signal()
seat_limit_changed = Signal()
seat_limit_exceeded = Signal()
seat_released = Signal()
payment_failed = Signal()
payment_recovered = Signal()
grace_period_ended = Signal()
item_price_changed = Signal()
