"""The data plane: decode -> validate -> route -> batch -> predict -> encode -> record.

Protocol-neutral and free of web imports; ``lockgate.web`` puts HTTP in front of it."""
