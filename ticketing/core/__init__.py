"""The base every other part stands on: models and migrations, database sessions, clock,
errors, languages, settings, money, personal data, audit and passwords."""
