"""The fault suite of issue 13 §3 (``make test-faults``)."""
