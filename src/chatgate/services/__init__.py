"""Use cases. Each public method is one thing a caller asks for: one transaction,
its audit rows, and a domain error when it is refused. They run in worker
threads (``http`` hands them over), so they may block on the database."""
