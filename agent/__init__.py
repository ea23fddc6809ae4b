"""paper-agent: cited answers over a collection of research papers."""

from paper_agent.offline import go_offline

go_offline()
