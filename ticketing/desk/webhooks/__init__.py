"""Outgoing webhooks for the shop (docs/webhooks.md).

- :mod:`~ticketing.desk.webhooks.events`: the four events, captured in the changing transaction
  (loaded by :mod:`ticketing.desk.lifecycle`, so every process that changes tickets has it);
- :mod:`~ticketing.desk.webhooks.signing`: ``Kefu-Signature`` signing and verification;
- :mod:`~ticketing.desk.webhooks.delivery`: the durable queue's claim, send, record and loop;
- :mod:`~ticketing.desk.webhooks.endpoints`, :mod:`~ticketing.desk.webhooks.history`: admin
  changes (audited) and the delivery log; :mod:`~ticketing.desk.webhooks.cli` the commands.

Nothing is imported here: loading the listeners must not pull in the HTTP client.
"""
