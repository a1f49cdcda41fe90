"""Market surveillance for the regulator: pure rules (rules.py), the nightly scan that stores alerts with their
evidence (service.py), and the API to list and resolve them (api.py)."""
