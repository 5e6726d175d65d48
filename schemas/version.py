"""The lake schema version. Bump it when a table's Arrow schema changes incompatibly."""

SCHEMA_VERSION = 1
