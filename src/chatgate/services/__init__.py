"""Use cases. Each public method is one thing a caller asks for: it reads top to
bottom, names its one transaction (``async with storage.write()``), writes its
audit rows, and raises a domain error when it is refused. Storage is reached
only through the ports in ``ports.py``."""
