"""Reader studies: design (TOML), crash-safe rating store (SQLite), sessions, ratings files
and exports. Qt-free; the reading screens live in ``reader_app.study``."""
