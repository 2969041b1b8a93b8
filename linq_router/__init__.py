"""linq_router: choose the ``from`` number for outbound Linq messages."""
