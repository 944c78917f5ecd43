"""Recommendation lists as data: export a model's top-K, import another system's lists, keep them.

Modules (import the one you need; this package file imports nothing, so low layers such as
the audit can use :mod:`engine.recs.model` without pulling in the store or the exporter):

* :mod:`engine.recs.model`: :class:`~engine.recs.model.ListModel`, fixed lists behaving like a model;
* :mod:`engine.recs.reading`: reading and validating a lists file (CSV or Parquet);
* :mod:`engine.recs.truth`: a held-out interactions file for ``gatlens audit --truth``;
* :mod:`engine.recs.stored`: imported lists in the artifact store (checksummed, versioned);
* :mod:`engine.recs.export`: every user's top-K of a model to CSV / Parquet, atomically.
"""
