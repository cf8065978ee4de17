"""Local stand-ins for the billing vendors, for the test-suite and the demo sandbox."""
