"""Compliance cycle of the registry: schemes, periods and their calendars, reports and verification, allocation
tables, surrender against obligations, settlement at the deadline and the published results."""
