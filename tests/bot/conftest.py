"""The gateway's tests share the one real assistant (Rasa + action server over a SQLite demo
shop) of ``tests/conftest.py`` (fixtures ``live_stack`` and ``desk``, also used by
``tests/e2e``); each test module runs its own gateway process (``tests/bot/gateway_harness.py``)
and uses its own conversations.
"""
