"""Pure Polars transforms: raw webhook deliveries -> unified payment events -> daily aggregates.

No I/O, no logging, nothing of the rest of the project imported; each function states its grain.
"""

from transforms.events import SilverSplit, drop_seen, to_silver
from transforms.merchant_daily import merchant_daily

__all__ = ["SilverSplit", "drop_seen", "merchant_daily", "to_silver"]
