"""orgbilling: bill Scalekit organizations through Chargebee from a Django project."""
