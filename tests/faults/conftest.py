"""The functional fixtures (in-process moto table, fixed clock, the chalice test client)."""
from tests.functional.conftest import Api, api  # noqa: F401
