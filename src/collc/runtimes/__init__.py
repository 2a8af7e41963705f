"""Which collective runtime, installed where, loads which of collc's outputs (``collc runtime``)."""
