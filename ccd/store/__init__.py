"""ccd's store: PostgreSQL through psycopg 3, numbered SQL migrations and a durable event writer.

* :mod:`ccd.store.db` - connections and pools (URLs are always redacted in logs).
* :mod:`ccd.store.migrate` - applies ``sql/NNN_*.sql`` under an advisory lock.
* :mod:`ccd.store.embedded` - an embedded PostgreSQL when ``database.url`` is empty.
* :mod:`ccd.store.writer` - :class:`~ccd.store.writer.EventWriter`: domain events ->
  on-disk spool -> PostgreSQL, in order and exactly once.
"""
