"""`uvicorn app:app`: the web app built from the environment's settings (`paper-agent serve` also sets up
the index and the model server first)."""

from paper_agent.web.app import create_app

app = create_app()
