"""The model registry: models, immutable versions, aliases with history, signatures, lineage.

Import the pieces from their modules (``lockgate.registry.service``, ``.signature``, ...);
this package stays free of web and CLI imports.
"""
