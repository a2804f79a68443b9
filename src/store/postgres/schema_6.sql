-- bizrelay on PostgreSQL, migration 6: how many hooks are kept unrouted and quarantined, so
-- /metrics and /readyz need no scan of `hooks` (issue #14: the scan ran in parallel workers
-- through a storm). The SQLite store's `inbox_counts`, with rows per connection: every
-- statement that moves hooks adds its change to the rows of its own server process (`shard`),
-- so no two transactions wait on one row; pruning folds the rows of other connections into
-- one. A state's figure is the sum of its rows.

CREATE TABLE inbox_counts (
    state TEXT NOT NULL,
    shard INTEGER NOT NULL,
    n     BIGINT NOT NULL,
    PRIMARY KEY (state, shard)
);
INSERT INTO inbox_counts (state, shard, n)
  SELECT 'unrouted', 0, COUNT(*) FROM hooks WHERE state = 'unrouted';
INSERT INTO inbox_counts (state, shard, n)
  SELECT 'quarantined', 0, COUNT(*) FROM hooks WHERE state = 'quarantined';
