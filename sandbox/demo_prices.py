"""The demo's plan catalog, as a Chargebee site would hold it: what the fake sells and the app offers.

Team per seat, monthly and yearly (two months free) in USD and monthly in JPY; Business with volume
tiers and a 14-day trial. Team monthly, the first offered plan, has no trial, so paying on the sandbox
checkout shows an active subscription straight away. Prices are in minor units (JPY has none).
"""

from __future__ import annotations

from sandbox.fake_chargebee_prices import item_price_object

TEAM_DESCRIPTION = "For small teams getting started."
BUSINESS_TIERS = [{"starting_unit": 1, "ending_unit": 10, "price": 2500}, {"starting_unit": 11, "price": 2000}]

DEMO_PRICES = [
    item_price_object("team-USD-monthly", item_id="team", external_name="Team", price=1500,
                      description=TEAM_DESCRIPTION),
    item_price_object("team-USD-yearly", item_id="team", external_name="Team", price=15000, period_unit="year",
                      description=TEAM_DESCRIPTION),
    item_price_object("business-USD-monthly", item_id="business", external_name="Business", pricing_model="volume",
                      tiers=BUSINESS_TIERS, trial_period=14, description="Volume pricing for larger organizations."),
    item_price_object("team-JPY-monthly", item_id="team", external_name="Team", currency_code="JPY", price=1500,
                      description=TEAM_DESCRIPTION),
]  # fmt: skip

# ORGBILLING_PLANS for the demo: which of them the billing page offers, in this order, with which seat range.
DEMO_PLANS = [
    {"id": "team-USD-monthly", "name": "Team", "max_seats": 50},
    {"id": "team-USD-yearly", "name": "Team", "max_seats": 50},
    {"id": "business-USD-monthly", "name": "Business", "min_seats": 5, "max_seats": 500},
    {"id": "team-JPY-monthly", "name": "Team", "max_seats": 50},
]
