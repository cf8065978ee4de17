"""orgbilling: bill Scalekit organizations through Chargebee from a Django project."""

__version__ = "0.1.0"
