"""The HTTP service: embeddings and NEMD reports from finished runs (FastAPI + uvicorn).

``python -m service --models ROOT`` serves every export under ROOT; :func:`service.app.create_app`
builds the app. Models are read only through :func:`pauc_ray.export.load_exported_model`; this
package never imports Ray.
"""
