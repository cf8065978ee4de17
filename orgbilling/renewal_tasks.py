"""Queue mode's renewal-estimate task: fetch a subscription's next charge after a change was committed.

It reads the row when it runs, so a task that runs twice, late, or after a
newer one costs nothing more than a query: the estimate is fetched only while
the row still needs one. A fetch that fails (after the gateway's own bounded
retries) is not queued again: the old figure stays, shown as being updated,
until ``orgbilling_sync --renewal-estimates`` or the next change fetches it.
So a Chargebee outage never leaves the queue full of estimate retries that
hold up the deliveries behind them.
"""

from __future__ import annotations

from .renewal_estimates import fetch_estimate
from .task_api import task

# Below the deliveries' default 0: workers take ready deliveries first, so a burst of renewals is applied at full
# speed and the figures for its subscriptions follow (a task for an older version then costs one query).
ESTIMATE_PRIORITY = -10


@task(priority=ESTIMATE_PRIORITY)
def fetch_renewal_estimate(subscription_id: str) -> str:
    return fetch_estimate(subscription_id)
