"""The deterministic bilingual demo shop that ``make run`` loads."""
