"""Incremental updates: read (:mod:`.read`), merge (:mod:`.merge`), warm-train (:mod:`.warm`),
compare (:mod:`.changes`) and apply (:mod:`.apply`, :func:`~engine.update.apply.update_model`)."""
