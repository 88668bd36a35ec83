"""Shared Hypothesis settings for the unit suite.

``database=None`` keeps property runs from writing an example database outside
``tests/unit``; ``deadline=None`` because pure code can still be slow on the first
call (imports, regex compilation) and a deadline would make that flaky.
"""

from __future__ import annotations

from hypothesis import settings

PROPERTY = settings(database=None, deadline=None)
