"""greenrights: the Python SDK for the greenrights API lives in `greenrights.client`."""
