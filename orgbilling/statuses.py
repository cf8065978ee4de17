"""What each subscription status means: one table, read by every surface (and printed in the README).

Chargebee's subscription statuses, plus the local ``future`` row a checkout
writes before Chargebee confirms it. Whether a status

* **entitles**: ``Organization.subscribed()``, ``@subscription_required``
  (pages and ``api=True``), the ``subscribed`` template filter, the API's
  ``entitled`` field and the seat limit (``seat_limits.wanted_limit``);
* **blocks a new checkout** (409): the organization already has a live
  subscription to change instead (a ``future`` row blocks only once Chargebee
  has confirmed it, i.e. it has a Chargebee id);
* **counts as cancelled**: ``subscription_cancelled`` fires on entering it,
  and ``orgbilling_sync`` and deletion leave it alone.

A subscription whose invoice is unpaid (past due) keeps its status in
Chargebee (``active`` or ``non_renewing``) while dunning runs, so it entitles
until Chargebee cancels it.
"""

from __future__ import annotations

from typing import NamedTuple


class Meaning(NamedTuple):
    entitles: bool
    blocks_checkout: bool
    cancelled: bool


MEANINGS: dict[str, Meaning] = {
    "future": Meaning(entitles=False, blocks_checkout=True, cancelled=False),
    "in_trial": Meaning(entitles=True, blocks_checkout=True, cancelled=False),
    "active": Meaning(entitles=True, blocks_checkout=True, cancelled=False),
    "non_renewing": Meaning(entitles=True, blocks_checkout=True, cancelled=False),
    "paused": Meaning(entitles=False, blocks_checkout=True, cancelled=False),
    "cancelled": Meaning(entitles=False, blocks_checkout=False, cancelled=True),
    "transferred": Meaning(entitles=False, blocks_checkout=False, cancelled=True),
}

ENTITLING = tuple(status for status, meaning in MEANINGS.items() if meaning.entitles)
BLOCKING_CHECKOUT = tuple(status for status, meaning in MEANINGS.items() if meaning.blocks_checkout)
CANCELLED = tuple(status for status, meaning in MEANINGS.items() if meaning.cancelled)
