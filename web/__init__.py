"""The browser workbench: server-rendered pages (Jinja2 + htmx) for the finance bureau, the regulators, key
emitters, banks and the public. Pages call the same services as the API; no business rule lives here."""
