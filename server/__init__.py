"""Composition root: the Litestar application, the CLI and the demo. The only package that imports every context."""
