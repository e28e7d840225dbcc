"""Read-only queries behind the desk's pages and JSON API.

Each query is restricted by :func:`ticketing.desk.access.visible_tickets` for the person asking,
never writes, and fetches a page in a fixed number of statements (no query per row).
"""
