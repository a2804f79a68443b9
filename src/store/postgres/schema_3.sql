-- bizrelay on PostgreSQL, migration 3: silences (`bizrelay silence`), as in the SQLite
-- store's schema.sql. Matchers are a JSON list of {"key","pattern"}; a silence is active
-- from starts_at (inclusive) to ends_at (exclusive); expiring one moves ends_at to then.

CREATE TABLE silences (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    v          BIGINT NOT NULL,
    matchers   TEXT NOT NULL,
    starts_at  BIGINT NOT NULL,
    ends_at    BIGINT NOT NULL,
    comment    TEXT NOT NULL,
    author     TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX silences_by_end ON silences (ends_at);

CREATE TABLE group_silenced (
    route     TEXT NOT NULL,
    group_key TEXT NOT NULL,
    count     BIGINT NOT NULL,
    PRIMARY KEY (route, group_key)
);
