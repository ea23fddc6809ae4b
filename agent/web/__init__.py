"""The web layer: the only package that imports FastAPI, Starlette or Gradio.

`app.create_app()` builds the whole app around one `PaperAgent`; each module here is one job of it (routes,
the OpenAI-compatible API, the chat UI, the generation gate, metrics, the event stream, errors as statuses).
"""
