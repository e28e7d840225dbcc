"""Kefu's system of record: the domain model and the services every channel calls.

This package never imports rasa, rasa_sdk, telegram, ``bot`` or ``actions``; they call it.
"""

__version__ = "0.1.0"
