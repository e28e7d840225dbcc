"""Refunds: the rules that decide the route (rules), the request and its workflow (flow),
the notices the customer gets (notices) and reason statistics (stats)."""
