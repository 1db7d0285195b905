"""Documents: PDF pages, chunks that remember their page, a local embedder, a chromadb index, hybrid retrieval."""
