"""Lifeline's data-quality layer (Great Expectations). See expectations/README.md."""
import os

# GE reads this when a context starts; the context config also sets analytics_enabled=False.
os.environ["GX_ANALYTICS_ENABLED"] = "False"
