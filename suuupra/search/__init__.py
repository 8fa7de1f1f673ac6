"""Content search, "more like this" and "also watched": the index and graph in the search engine, the embedder
that turns content into vectors, and the queries users run (docs/search.md)."""
