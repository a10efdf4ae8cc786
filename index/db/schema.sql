CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS products (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    sku         TEXT NOT NULL UNIQUE,
    title       TEXT NOT NULL,
    category    TEXT,
    price       REAL,
    attributes  TEXT NOT NULL DEFAULT '{}',
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS products_category ON products (category);
CREATE TABLE IF NOT EXISTS images (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    product_id    INTEGER NOT NULL REFERENCES products (id) ON DELETE CASCADE,
    content_hash  TEXT NOT NULL,
    path          TEXT NOT NULL,
    embedding     BLOB NOT NULL,
    fingerprint   TEXT NOT NULL,
    created_at    TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS images_product ON images (product_id);
-- Local features (SIFT keypoints + descriptors, encoder/local_features.py) of an image, for the
-- geometric re-ranking of search results. Added in schema version 2: an image without a row (a
-- store built before, or with re-ranking off) is simply not re-ranked.
CREATE TABLE IF NOT EXISTS image_features (
    image_id  INTEGER PRIMARY KEY REFERENCES images (id) ON DELETE CASCADE,
    kind      TEXT NOT NULL,
    data      BLOB NOT NULL
);
-- The local index's codebook (visual words and the descriptors' product quantiser,
-- index/local/codebook.py), named by its hash; meta 'local_codebook' names the one in use. Added in
-- schema version 3.
CREATE TABLE IF NOT EXISTS local_codebook (
    name  TEXT PRIMARY KEY,
    data  BLOB NOT NULL
);
-- Every change to the vector set, in commit order: the FAISS snapshot records the last seq it
-- holds, and start-up replays the newer ones.
CREATE TABLE IF NOT EXISTS changes (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    op        TEXT NOT NULL CHECK (op IN ('add', 'remove')),
    image_id  INTEGER NOT NULL
);
-- Text search over titles, categories and attributes (FTS5 over the products table, kept in step
-- by triggers; bm25 ranks the matches).
CREATE VIRTUAL TABLE IF NOT EXISTS products_text USING fts5(
    title, category, attributes,
    content='products', content_rowid='id', tokenize='unicode61 remove_diacritics 2'
);
CREATE TRIGGER IF NOT EXISTS products_text_insert AFTER INSERT ON products BEGIN
    INSERT INTO products_text (rowid, title, category, attributes)
    VALUES (new.id, new.title, new.category, new.attributes);
END;
CREATE TRIGGER IF NOT EXISTS products_text_delete AFTER DELETE ON products BEGIN
    INSERT INTO products_text (products_text, rowid, title, category, attributes)
    VALUES ('delete', old.id, old.title, old.category, old.attributes);
END;
CREATE TRIGGER IF NOT EXISTS products_text_update AFTER UPDATE ON products BEGIN
    INSERT INTO products_text (products_text, rowid, title, category, attributes)
    VALUES ('delete', old.id, old.title, old.category, old.attributes);
    INSERT INTO products_text (rowid, title, category, attributes)
    VALUES (new.id, new.title, new.category, new.attributes);
END;
