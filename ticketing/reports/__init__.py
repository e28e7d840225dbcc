"""What managers read: metric definitions over the desk's per-ticket facts, dashboards'
queries, drill-downs, exports and alerts. Reads the desk and the shop; the desk web shows it."""
