"""Natural-language search over a gallery: the index the `index` stage writes, the engine, the web app."""
