"""The ``lockgate`` command line: one module per command group; commands stay thin."""
