"""The operator station: a web UI for end-of-line lines and repair depots (issue 10).

``bench station serve`` runs :func:`bench.ui.app.create_app` under uvicorn. Each configured
station is one :class:`bench.ui.slot.BenchSlot`; the engine runs in a worker thread and its
progress events reach the browser by server-sent events (:mod:`bench.ui.feed`).
"""
