"""The desk web: the pages and JSON API agents, supervisors and managers work in.

The top layer of ``ticketing``: it reads through :mod:`ticketing.web.queries` and writes only
through the services below it, one transaction per request. Nothing imports it.
"""
