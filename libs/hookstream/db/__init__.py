"""PostgreSQL access: a psycopg 3 connection pool and ordered plain-SQL migrations."""

from hookstream.db.migrations import Migration, apply_migrations, bundled_migrations, packaged_migrations
from hookstream.db.pool import BoundDatabase, Database

__all__ = ["BoundDatabase", "Database", "Migration", "apply_migrations", "bundled_migrations", "packaged_migrations"]
