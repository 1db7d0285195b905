"""Services over the whole core: what ``macapp doctor`` and Help > Copy Diagnostic Report show.

``diagnostics`` gathers the facts about where Orchard runs (app, hardware, folders, library);
``speedtest`` loads the smallest installed model and measures its generation speed. They sit above the
engines and the model library they use, beside the server, and nothing in the core imports them.
"""
