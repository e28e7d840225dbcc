"""The gateway: customer channels (Telegram, web widget) ⇄ the assistant or the ticket's owner.

See docs/gateway.md. ``python -m bot`` runs it.
"""
