"""Settings for the ``db_worker`` processes tests start: the project's, plus overrides given as JSON.

``ORGBILLING_TEST_SETTINGS='{"ORGBILLING_QUEUE_LEASE": 2}'`` sets what the test's own ``settings``
fixture sets in-process (the fake Chargebee's URL, a short lease), which environment variables cannot.
"""

import json
import os

from billing_project.settings import *  # noqa: F403

globals().update(json.loads(os.environ.get("ORGBILLING_TEST_SETTINGS", "{}")))
