"""``python -m ticketing.desk.webhooks``: see :mod:`ticketing.desk.webhooks.cli`."""

from ticketing.desk.webhooks.cli import main

if __name__ == "__main__":  # importing the package's modules one by one must not start it
    raise SystemExit(main())
