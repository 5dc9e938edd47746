"""The retrieval rig: embed a gallery with an exported model, search it, show the matches.

    gallery.py   a build's shards (via manifest.json) or a folder of images, item by item
    images.py    safe decoding of untrusted images (the build's rules) and the model's view
    embedder.py  the exported SavedModel, loaded once, embedding uint8 batches
    index.py     exact vectorised top-k (numpy), an optional ANN backend (faiss) behind it
    cache.py     gallery embeddings cached on disk, keyed by model and gallery digests
    search.py    the three together: a Searcher answering queries
    report.py    the HTML report and the PNG contact sheet of `unibed search`
    dataset_pages.py  what the web pages show of a build: duplicates, rejects, summary
    web/         the FastAPI app of `unibed serve`: app.py puts it together from
                 site.py (what every page shares), search.py (/, /search), thumbs.py
                 (/thumb/{id}), dataset.py (/duplicates, /rejects, /summary),
                 upload_limit.py (the upload-size middleware, 413); templates/

The two subcommands (`unibed search`, `unibed serve`) live in unibed/cli/search.py.

This package is on the TensorFlow side of the process boundary (it loads a
SavedModel) and also reads shards with the TF-free codec: both may share a
process (see DESIGN.md).
"""
