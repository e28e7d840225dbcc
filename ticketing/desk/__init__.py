"""The human side: tickets and their state machine, triage, ownership, routing, dispatch,
escalation, SLA timers, satisfaction and follow-up, notifications, reports, handoffs, worker."""
